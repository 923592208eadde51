//! Block Public Access (bucket level) and object ownership controls: the two bucket
//! configurations that say what a bucket may never be opened to and who owns what is written
//! to it, their records, and the checks they add to the access gate.
//!
//! **PublicAccessBlock** (Put/Get/DeletePublicAccessBlock) is one metadata record,
//! `R` ‖ scope ‖ `\0` ‖ `public-access-block` (`bucket_config`), on the bucket record's replicas:
//! format byte 1 ‖ flags u8 (bit 0 BlockPublicAcls, 1 IgnorePublicAcls, 2 BlockPublicPolicy,
//! 3 RestrictPublicBuckets; other bits set is a malformed record). Keyed by the scope, it dies
//! with the bucket's incarnation like the policy record. Its settings, as AWS defines them:
//!
//! - **BlockPublicPolicy**: PutBucketPolicy with a public policy (`policy::Policy::is_public`,
//!   the one definition GetBucketPolicyStatus reports) answers 403 AccessDenied
//!   (`bucket_policy`). A public policy already stored stays, as in AWS.
//! - **RestrictPublicBuckets**: while the bucket's policy is public, only the owner and the
//!   users the policy names get through it; anyone else, anonymous callers above all, is
//!   denied even where the policy allows them ([`restricts`], called by `authz`).
//! - **BlockPublicAcls**: a request asking for a public ACL (a public canned ACL, or a grant
//!   to the AllUsers or AuthenticatedUsers group, in headers, a POST form or a Put*Acl body)
//!   answers 403 AccessDenied, as AWS does: PutBucketAcl checks it itself (`acl`), object
//!   writes and PutObjectAcl too (`object_acl`); on a request `refuse` turns down anyway the
//!   gate does ([`check_acl_request`]). CreateBucket is not judged: a bucket has no
//!   configuration before it exists (account-level blocks are not built).
//! - **IgnorePublicAcls**: the public grants of the bucket's ACL and of its objects' count for
//!   nothing (`acl`, `object_acl`).
//!
//! The access gate reads the setting through [`State`], a cache per scope like the policy's
//! ([`CACHE_TTL`]); only requests that could be affected read it (a caller who is not the owner
//! of a bucket with a policy, a request asking for a public ACL). Put/Delete drop the entry on
//! the gateway that served them; another gateway sees the change within the TTL. The
//! configuration calls themselves are always the owner's (`authz`), whatever the policy says;
//! other callers need the policy's `s3:GetBucketPublicAccessBlock` /
//! `s3:PutBucketPublicAccessBlock`.
//!
//! **OwnershipControls** (Put/Get/DeleteBucketOwnershipControls, [`Ownership`]): who owns
//! what is written to the bucket (`object_acl` has the rules). `BucketOwnerEnforced` disables
//! ACLs (`acl`) and the bucket owner owns every object; `ObjectWriter` makes the writer own
//! what it writes; `BucketOwnerPreferred` the bucket owner what is written with
//! `bucket-owner-full-control`, the writer the rest. Stored as `R` ‖ scope ‖ `\0` ‖
//! `ownership`: format byte 1 ‖ 1 BucketOwnerEnforced, 2 BucketOwnerPreferred, 3
//! ObjectWriter; CreateBucket's `x-amz-object-ownership` stores it too. Without the record
//! GetBucketOwnershipControls answers 404 OwnershipControlsNotFoundError, as AWS for a bucket
//! without the configuration, and the bucket behaves as percore always did: ACLs enabled, the
//! bucket owner owning every object.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use s3s::dto::{
    AccessControlPolicy, DeleteBucketOwnershipControlsInput, DeleteBucketOwnershipControlsOutput,
    DeletePublicAccessBlockInput, DeletePublicAccessBlockOutput, GetBucketOwnershipControlsInput,
    GetBucketOwnershipControlsOutput, GetPublicAccessBlockInput, GetPublicAccessBlockOutput,
    ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
    PutBucketOwnershipControlsInput, PutBucketOwnershipControlsOutput, PutObjectInput,
    PutPublicAccessBlockInput, PutPublicAccessBlockOutput,
};
use s3s::path::S3Path;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use crate::records::Malformed;
use crate::s3::s3_err;
use crate::s3::{user_of, Gateway};
use crate::ttl_cache::TtlCache;

const VERSION: u8 = 1;
/// How long a scope's looked-up setting is used without reading it again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Scopes the cache holds at most.
pub const CACHE_ENTRIES_MAX: usize = 4096;
/// Bytes the cache holds at most (an entry counts its scope and a fixed overhead).
pub const CACHE_BYTES_MAX: usize = 1 << 20;
/// The ownership record's values (`Ownership`). Persisted codes never change.
const OWNER_ENFORCED: u8 = 1;
const OWNER_PREFERRED: u8 = 2;
const OBJECT_WRITER: u8 = 3;

/// The canned ACLs that open a bucket or object to the public (AWS's list).
const PUBLIC_CANNED_ACLS: [&str; 3] = ["public-read", "public-read-write", "authenticated-read"];
/// The grantee groups that make a grant public.
const PUBLIC_GROUPS: [&str; 2] = [
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
];
const GRANT_HEADERS: [&str; 5] = [
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
];

/// A bucket's PublicAccessBlock configuration (module docs).
// AWS's four independent settings, one field each (stored as four flag bits).
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Block {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl Block {
    fn bits(self) -> u8 {
        u8::from(self.block_public_acls)
            | u8::from(self.ignore_public_acls) << 1
            | u8::from(self.block_public_policy) << 2
            | u8::from(self.restrict_public_buckets) << 3
    }

    /// Format 1: version u8 ‖ flags u8.
    pub fn encode(self) -> Bytes {
        Bytes::copy_from_slice(&[VERSION, self.bits()])
    }

    pub fn decode(b: &[u8]) -> Result<Block, Malformed> {
        match b {
            [VERSION, bits] if bits & !0b1111 == 0 => Ok(Block {
                block_public_acls: bits & 1 != 0,
                ignore_public_acls: bits & 2 != 0,
                block_public_policy: bits & 4 != 0,
                restrict_public_buckets: bits & 8 != 0,
            }),
            [VERSION, _] => Err(Malformed("public access block: unknown flags")),
            [VERSION, ..] => Err(Malformed("public access block: wrong length")),
            [_, ..] => Err(Malformed("public access block: unknown format")),
            [] => Err(Malformed("public access block: empty")),
        }
    }

    /// A setting left out of the request is false, as in AWS.
    fn of(c: &PublicAccessBlockConfiguration) -> Block {
        Block {
            block_public_acls: c.block_public_acls == Some(true),
            ignore_public_acls: c.ignore_public_acls == Some(true),
            block_public_policy: c.block_public_policy == Some(true),
            restrict_public_buckets: c.restrict_public_buckets == Some(true),
        }
    }

    fn configuration(self) -> PublicAccessBlockConfiguration {
        PublicAccessBlockConfiguration {
            block_public_acls: Some(self.block_public_acls),
            ignore_public_acls: Some(self.ignore_public_acls),
            block_public_policy: Some(self.block_public_policy),
            restrict_public_buckets: Some(self.restrict_public_buckets),
        }
    }
}

/// The configuration record names (`bucket_config`): `R` ‖ scope ‖ 0 ‖ name.
const BLOCK_CONFIG: &str = "public-access-block";
pub(crate) const OWNERSHIP_CONFIG: &str = "ownership";

/// A bucket's object ownership (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// No ownership controls: ACLs enabled, the bucket owner owns every object.
    Unset,
    BucketOwnerEnforced,
    BucketOwnerPreferred,
    ObjectWriter,
}

impl Ownership {
    /// The value of an `x-amz-object-ownership` header or an ownership rule (`None`: not one
    /// of S3's three).
    pub fn parse(value: &str) -> Option<Ownership> {
        Some(match value {
            ObjectOwnership::BUCKET_OWNER_ENFORCED => Ownership::BucketOwnerEnforced,
            ObjectOwnership::BUCKET_OWNER_PREFERRED => Ownership::BucketOwnerPreferred,
            ObjectOwnership::OBJECT_WRITER => Ownership::ObjectWriter,
            _ => return None,
        })
    }

    fn name(self) -> Option<&'static str> {
        match self {
            Ownership::Unset => None,
            Ownership::BucketOwnerEnforced => Some(ObjectOwnership::BUCKET_OWNER_ENFORCED),
            Ownership::BucketOwnerPreferred => Some(ObjectOwnership::BUCKET_OWNER_PREFERRED),
            Ownership::ObjectWriter => Some(ObjectOwnership::OBJECT_WRITER),
        }
    }

    fn code(self) -> Option<u8> {
        match self {
            Ownership::Unset => None,
            Ownership::BucketOwnerEnforced => Some(OWNER_ENFORCED),
            Ownership::BucketOwnerPreferred => Some(OWNER_PREFERRED),
            Ownership::ObjectWriter => Some(OBJECT_WRITER),
        }
    }

    /// Whether objects of the bucket may be owned by their writers (ACLs enabled and not
    /// every object the bucket owner's).
    pub fn writers_own(self) -> bool {
        matches!(
            self,
            Ownership::BucketOwnerPreferred | Ownership::ObjectWriter
        )
    }
}

/// The ownership a stored ownership record says.
pub fn decode_ownership(b: &[u8]) -> Result<Ownership, Malformed> {
    match b {
        [VERSION, OWNER_ENFORCED] => Ok(Ownership::BucketOwnerEnforced),
        [VERSION, OWNER_PREFERRED] => Ok(Ownership::BucketOwnerPreferred),
        [VERSION, OBJECT_WRITER] => Ok(Ownership::ObjectWriter),
        [VERSION, ..] => Err(Malformed("ownership controls: unknown value")),
        [_, ..] => Err(Malformed("ownership controls: unknown format")),
        [] => Err(Malformed("ownership controls: empty")),
    }
}

/// Whether RestrictPublicBuckets keeps a caller who does not own the bucket out of it:
/// the bucket's policy is public and the caller (`user`: a user name, `None`: anonymous) is
/// not one of the users it names (percore's "same account").
pub fn restricts(block: Option<Block>, policy: &policy::Policy, user: Option<&str>) -> bool {
    let restrict = block.is_some_and(|b| b.restrict_public_buckets);
    restrict && policy.is_public() && !user.is_some_and(|u| policy.named_users().contains(u))
}

fn grant_is_public(value: &str) -> bool {
    let value = value.to_ascii_lowercase();
    PUBLIC_GROUPS
        .iter()
        .any(|g| value.contains(&g.to_ascii_lowercase()))
}

fn canned_is_public(value: &str) -> bool {
    PUBLIC_CANNED_ACLS.contains(&value)
}

/// Whether a request's headers or query string (presigned URLs) ask for a public ACL.
pub fn asks_public_acl(headers: &HeaderMap, query: &str) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let value = |name: &str| header(name).or_else(|| crate::access::query_param(query, name));
    value("x-amz-acl").is_some_and(|v| canned_is_public(&v))
        || GRANT_HEADERS
            .iter()
            .any(|h| value(h).is_some_and(|v| grant_is_public(&v)))
}

/// Whether an ACL body grants anything to a public group.
fn policy_is_public(acl: Option<&AccessControlPolicy>) -> bool {
    acl.and_then(|p| p.grants.as_ref()).is_some_and(|grants| {
        grants.iter().any(|g| {
            g.grantee
                .as_ref()
                .and_then(|e| e.uri.as_deref())
                .is_some_and(grant_is_public)
        })
    })
}

/// The parts of a Put*Acl request or POST form that may ask for a public ACL.
#[derive(Default)]
pub struct AclAsked<'a> {
    pub canned: Option<&'a str>,
    pub grants: [Option<&'a str>; 5],
    pub body: Option<&'a AccessControlPolicy>,
}

impl AclAsked<'_> {
    fn is_public(&self) -> bool {
        self.canned.is_some_and(canned_is_public)
            || self.grants.iter().flatten().any(|g| grant_is_public(g))
            || policy_is_public(self.body)
    }
}

pub(crate) fn blocked_acl() -> S3Error {
    s3_error!(
        AccessDenied,
        "Access Denied: public ACLs are blocked by the BlockPublicAcls setting of this bucket's \
         public access block"
    )
}

/// The gate's check (`access`), on a request `refuse` turns down: on an existing bucket whose
/// public access block sets BlockPublicAcls, one asking for a public ACL answers AccessDenied
/// instead (module docs). Other requests never get here.
pub async fn check_acl_request(
    gateway: &Gateway,
    op: &str,
    path: &S3Path,
    headers: &HeaderMap,
    query: &str,
) -> S3Result<()> {
    let bucket = match path {
        S3Path::Root => return Ok(()),
        S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket,
    };
    if op == "CreateBucket" {
        return Ok(());
    }
    if asks_public_acl(headers, query) {
        gateway.check_blocks_acls(bucket).await?;
    }
    if asks_acl(headers, query) {
        gateway.check_acls_enabled(bucket).await?;
    }
    Ok(())
}

/// Whether a request asks for an ACL beyond the owner-only one every object has.
fn asks_acl(headers: &HeaderMap, query: &str) -> bool {
    let present = |name: &str| {
        headers.contains_key(name) || crate::access::query_param(query, name).is_some()
    };
    let canned = headers
        .get("x-amz-acl")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| crate::access::query_param(query, "x-amz-acl"));
    canned.is_some_and(|c| !crate::acl::canned_object_is_owner_only(&c))
        || GRANT_HEADERS.iter().any(|h| present(h))
}

/// The same check on a refused PutObject's parsed input (a browser POST form's fields).
pub async fn check_put_object(gateway: &Gateway, i: &PutObjectInput) -> S3Result<()> {
    let asked = AclAsked {
        canned: i.acl.as_ref().map(s3s::dto::ObjectCannedACL::as_str),
        grants: [
            i.grant_read.as_deref(),
            i.grant_read_acp.as_deref(),
            i.grant_write_acp.as_deref(),
            i.grant_full_control.as_deref(),
            None,
        ],
        body: None,
    };
    if asked.is_public() {
        gateway.check_blocks_acls(&i.bucket).await?;
    }
    let owner_only = asked
        .canned
        .is_none_or(crate::acl::canned_object_is_owner_only);
    if !owner_only || asked.grants.iter().any(Option::is_some) {
        gateway.check_acls_enabled(&i.bucket).await?;
    }
    Ok(())
}

fn not_found_block() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "The public access block configuration was not found",
    );
    e.set_status_code(hyper::StatusCode::NOT_FOUND);
    e
}

/// The public access block settings as last read, per scope (module docs).
pub struct State {
    cache: TtlCache<Option<Block>>,
}

impl Default for State {
    fn default() -> State {
        State {
            cache: TtlCache::new(CACHE_TTL, CACHE_ENTRIES_MAX, CACHE_BYTES_MAX),
        }
    }
}

impl State {
    fn put(&self, scope: &str, block: Option<Block>) {
        self.cache.put(scope, block, scope.len() + 64);
    }
}

impl Gateway {
    /// A scope's public access block (`None`: none), read now.
    pub(crate) async fn read_block(&self, scope: &str) -> S3Result<Option<Block>> {
        self.config_read(scope, BLOCK_CONFIG)
            .await?
            .map(|v| Block::decode(&v).map_err(|e| s3_error!(e, InternalError)))
            .transpose()
    }

    /// A scope's public access block, through the cache.
    pub(crate) async fn public_access_block(&self, scope: &str) -> S3Result<Option<Block>> {
        if let Some(block) = self.public_access.cache.get(scope) {
            return Ok(block);
        }
        let block = self.read_block(scope).await?;
        self.public_access.put(scope, block);
        Ok(block)
    }

    /// Whether RestrictPublicBuckets keeps `user` (not the owner) out of the bucket of `scope`
    /// whose policy is `policy` ([`restricts`]).
    pub(crate) async fn restricted(
        &self,
        scope: &str,
        policy: &policy::Policy,
        user: Option<&str>,
    ) -> S3Result<bool> {
        if !policy.is_public() {
            return Ok(false);
        }
        let block = self.public_access_block(scope).await?;
        Ok(restricts(block, policy, user))
    }

    /// AccessDenied when `bucket` exists and blocks public ACLs.
    async fn check_blocks_acls(&self, bucket: &str) -> S3Result<()> {
        let Some(record) = self.store.bucket(bucket).await.map_err(s3_err)? else {
            return Ok(());
        };
        let block = self.public_access_block(&record.scope(bucket)).await?;
        if block.is_some_and(|b| b.block_public_acls) {
            return Err(blocked_acl());
        }
        Ok(())
    }

    /// PutBucketPolicy's check (BlockPublicPolicy), on the record as it is now.
    pub(crate) async fn check_public_policy(
        &self,
        scope: &str,
        policy: &policy::Policy,
    ) -> S3Result<()> {
        if !policy.is_public() {
            return Ok(());
        }
        if self
            .read_block(scope)
            .await?
            .is_some_and(|b| b.block_public_policy)
        {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied: public policies are blocked by the BlockPublicPolicy setting of \
                 this bucket's public access block"
            ));
        }
        Ok(())
    }

    pub(crate) async fn block_put(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let scope = self.owned_bucket(&input.bucket, &user).await?.scope;
        let block = Block::of(&input.public_access_block_configuration);
        let stored = self.config_put(&scope, BLOCK_CONFIG, &block.encode()).await;
        self.public_access.cache.forget(&scope);
        stored?;
        Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
    }

    pub(crate) async fn block_get(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let block = self.read_block(&scope).await?.ok_or_else(not_found_block)?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(block.configuration()),
        }))
    }

    pub(crate) async fn block_delete(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        self.config_delete(&scope, BLOCK_CONFIG).await?;
        self.public_access.cache.forget(&scope);
        Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
    }

    /// Stores BucketOwnerEnforced for `scope` (PutBucketOwnershipControls, CreateBucket).
    /// Stores `scope`'s ownership (`Unset`: removes the record).
    pub(crate) async fn store_ownership(&self, scope: &str, ownership: Ownership) -> S3Result<()> {
        match ownership.code() {
            Some(code) => {
                let value = Bytes::copy_from_slice(&[VERSION, code]);
                self.config_put(scope, OWNERSHIP_CONFIG, &value).await
            }
            None => self.config_delete(scope, OWNERSHIP_CONFIG).await,
        }
    }

    pub(crate) async fn ownership_put(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let scope = self.owned_bucket(&input.bucket, &user).await?.scope;
        let ownership = check_ownership_rules(&input.ownership_controls)?;
        let stored = self.store_ownership(&scope, ownership).await;
        self.acls.forget(&scope);
        stored?;
        Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
    }

    pub(crate) async fn ownership_get(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let stored = self
            .config_read(&scope, OWNERSHIP_CONFIG)
            .await?
            .ok_or_else(|| {
                s3_error!(
                    OwnershipControlsNotFoundError,
                    "The bucket ownership controls were not found"
                )
            })?;
        let ownership = decode_ownership(&stored).map_err(|e| s3_error!(e, InternalError))?;
        let name = ownership.name().ok_or_else(|| s3_error!(InternalError))?;
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls {
                rules: vec![OwnershipControlsRule {
                    object_ownership: ObjectOwnership::from_static(name),
                }],
            }),
        }))
    }

    pub(crate) async fn ownership_delete(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let deleted = self.config_delete(&scope, OWNERSHIP_CONFIG).await;
        self.acls.forget(&scope);
        deleted?;
        Ok(S3Response::new(
            DeleteBucketOwnershipControlsOutput::default(),
        ))
    }
}

/// One rule, BucketOwnerEnforced (module docs).
fn check_ownership_rules(controls: &OwnershipControls) -> S3Result<Ownership> {
    let [rule] = controls.rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "OwnershipControls must hold exactly one rule"
        ));
    };
    Ownership::parse(rule.object_ownership.as_str()).ok_or_else(|| {
        s3_error!(
            MalformedXML,
            "ObjectOwnership must be BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_record_round_trip_and_refusals() {
        for bits in 0..16u8 {
            let b = Block::decode(&[VERSION, bits]).unwrap();
            assert_eq!(b.bits(), bits);
            assert_eq!(Block::decode(&b.encode()).unwrap(), b);
        }
        assert!(Block::decode(&[VERSION, 16]).is_err());
        assert!(Block::decode(&[VERSION]).is_err());
        assert!(Block::decode(&[VERSION, 1, 0]).is_err());
        assert!(Block::decode(&[2, 1]).is_err());
        assert!(Block::decode(&[]).is_err());
        let key = crate::bucket_config::config_key;
        assert_eq!(
            &key("b/00", BLOCK_CONFIG)[..],
            b"Rb/00\0public-access-block"
        );
        assert_eq!(&key("b/00", OWNERSHIP_CONFIG)[..], b"Rb/00\0ownership");
        for o in [
            Ownership::BucketOwnerEnforced,
            Ownership::BucketOwnerPreferred,
            Ownership::ObjectWriter,
        ] {
            let code = o.code().unwrap();
            assert_eq!(decode_ownership(&[VERSION, code]).unwrap(), o);
            assert_eq!(Ownership::parse(o.name().unwrap()), Some(o));
            assert!(decode_ownership(&[VERSION, code, 0]).is_err());
        }
        // Format 1 as written to disk.
        assert_eq!(
            decode_ownership(&[1, 1]).unwrap(),
            Ownership::BucketOwnerEnforced
        );
        assert!(decode_ownership(&[VERSION, 4]).is_err());
        assert!(decode_ownership(&[VERSION, 0]).is_err());
        assert!(decode_ownership(&[VERSION]).is_err());
        assert!(decode_ownership(&[2, 1]).is_err());
        assert!(decode_ownership(&[]).is_err());
    }

    #[test]
    fn left_out_settings_are_false() {
        let b = Block::of(&PublicAccessBlockConfiguration {
            block_public_policy: Some(true),
            ignore_public_acls: Some(false),
            ..Default::default()
        });
        assert_eq!(
            b,
            Block {
                block_public_policy: true,
                ..Block::default()
            }
        );
        assert_eq!(Block::of(&b.configuration()), b);
    }

    fn parse(text: &str) -> policy::Policy {
        policy::Policy::parse_bucket(text.as_bytes(), "b").unwrap()
    }

    #[test]
    fn restrict_applies_to_public_policies_and_strangers_only() {
        let public = parse(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"s3:PutObject",
             "Resource":"arn:aws:s3:::b/*"}]}"#,
        );
        let named_only = parse(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"s3:GetObject",
             "Resource":"arn:aws:s3:::b/*"}]}"#,
        );
        let restrict = Some(Block {
            restrict_public_buckets: true,
            ..Block::default()
        });
        assert!(restricts(restrict, &public, None));
        assert!(restricts(restrict, &public, Some("bob")));
        assert!(!restricts(restrict, &public, Some("alice")));
        assert!(!restricts(restrict, &named_only, None));
        assert!(!restricts(None, &public, None));
        assert!(!restricts(Some(Block::default()), &public, None));
    }

    #[test]
    fn public_acls_are_recognized() {
        let mut h = HeaderMap::new();
        assert!(!asks_public_acl(&h, ""));
        h.insert("x-amz-acl", "private".parse().unwrap());
        assert!(!asks_public_acl(&h, ""));
        h.insert("x-amz-acl", "public-read".parse().unwrap());
        assert!(asks_public_acl(&h, ""));
        let mut h = HeaderMap::new();
        h.insert("x-amz-grant-read", "id=\"someone\"".parse().unwrap());
        assert!(!asks_public_acl(&h, ""));
        h.insert(
            "x-amz-grant-write",
            "id=\"x\", uri=\"http://acs.amazonaws.com/groups/global/AuthenticatedUsers\""
                .parse()
                .unwrap(),
        );
        assert!(asks_public_acl(&h, ""));
        assert!(asks_public_acl(
            &HeaderMap::new(),
            "X-Amz-Expires=60&x-amz-acl=public-read-write"
        ));
        assert!(!asks_public_acl(
            &HeaderMap::new(),
            "X-Amz-Expires=60&x-amz-acl=bucket-owner-read"
        ));
        let asked = AclAsked {
            canned: Some("authenticated-read"),
            ..AclAsked::default()
        };
        assert!(asked.is_public());
        assert!(!AclAsked::default().is_public());
    }

    #[test]
    fn ownership_rules() {
        let rules = |values: &[&'static str]| OwnershipControls {
            rules: values
                .iter()
                .map(|v| OwnershipControlsRule {
                    object_ownership: ObjectOwnership::from_static(v),
                })
                .collect(),
        };
        let code = |values: &[&'static str]| {
            check_ownership_rules(&rules(values))
                .err()
                .map(|e| e.code().as_str().to_owned())
        };
        assert_eq!(code(&["BucketOwnerEnforced"]), None);
        assert_eq!(code(&["ObjectWriter"]), None);
        assert_eq!(code(&["BucketOwnerPreferred"]), None);
        assert_eq!(
            check_ownership_rules(&rules(&["ObjectWriter"])).unwrap(),
            Ownership::ObjectWriter
        );
        assert_eq!(code(&["Nobody"]), Some("MalformedXML".into()));
        assert_eq!(code(&[]), Some("MalformedXML".into()));
        assert_eq!(
            code(&["BucketOwnerEnforced", "BucketOwnerEnforced"]),
            Some("MalformedXML".into())
        );
    }
}
