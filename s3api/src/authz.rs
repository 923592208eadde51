//! Who may do what: the bucket-policy judgement the access gate (`access::Gate`) makes for
//! every request after its authentication checks and `refuse`, before the body is read.
//!
//! - **No bucket** (ListBuckets) and **CreateBucket**: signed requests only, as before;
//!   anonymous callers get AccessDenied. ListBuckets lists the caller's own buckets.
//! - **A bucket that does not exist**: NoSuchBucket, for every caller (as AWS).
//! - **The policy operations** (Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus): the bucket
//!   owner only, whatever the policy says: the owner cannot be locked out and cannot delegate
//!   them (simpler than AWS, which lets a policy grant them).
//! - **The public access block and ownership controls operations**: the owner always (a
//!   policy cannot deny them to the owner); anyone else as the policy says, like any other
//!   operation (`public_access`).
//! - **Every other bucket or object operation** is mapped to its action and resource
//!   (`policy::action_for`) and judged by the bucket's policy (`bucket_policy`) with the
//!   request's condition keys ([`Facts`]):
//!   - the owner's request is allowed unless an explicit Deny applies;
//!   - another user's, or an anonymous one (principal `*` only), is allowed only by an Allow
//!     and never with a Deny. The handler then acts as the bucket owner ([`ActingFor`],
//!     read by `s3::user_of`): what such a caller writes belongs to the bucket owner, unless
//!     the bucket's ownership controls make writers own objects (`object_acl`).
//!   - A caller the bucket's ACL grants what the action needs (`acl`) is allowed like the
//!     owner: unless an explicit Deny applies; it then acts as the bucket owner too. So is a
//!     caller an object version's own ACL grants GetObject, HeadObject, GetObjectAcl or
//!     PutObjectAcl (`object_acl`: read only where no cheaper input lets the caller in; the
//!     version judged is the one the handler must serve, [`JudgedVersion`]). Where writers may
//!     own objects (ObjectWriter, BucketOwnerPreferred), the bucket owner too gets only what an
//!     object owned by someone else grants it, for those four operations.
//!   - An operation percore has no action for is refused to anonymous callers and left to the
//!     handler's ownership check for signed ones.
//!   - RestrictPublicBuckets: while the bucket's policy is public, a caller who is not the
//!     owner and not named by the policy is denied whatever the policy allows
//!     (`public_access::restricts`); copy sources are judged the same way.
//! - **Object Lock headers on a write** (PutObject, CopyObject, CreateMultipartUpload, a POST
//!   form's fields) by a caller who is not the owner also need `s3:PutObjectRetention` (mode,
//!   retain-until date) or `s3:PutObjectLegalHold` from the policy, as in S3; no ACL grants
//!   them ([`check_lock_headers`]).
//! - **CopyObject, UploadPartCopy** also need `s3:GetObject` (`s3:GetObjectVersion` with a
//!   versionId) on the source, judged by the source bucket's owner and policy the same way,
//!   and by the source version's own ACL (READ), whose judged version the handler must copy.
//!   The copy then reads the source as the request's acting user, so a copy between buckets
//!   of different owners is refused by the handler even when both policies allow it.
//! - **DeleteObjects** is judged per key ([`check_key_delete`], called by the handler): a
//!   refused key is that key's AccessDenied in the response.
//! - **Bypassing governance retention** (`x-amz-bypass-governance-retention: true` on
//!   DeleteObject, DeleteObjects, PutObjectRetention) needs `s3:BypassGovernanceRetention`
//!   on the object, judged like any action: the owner has it unless the policy denies it,
//!   anyone else only by an Allow. The gate does not refuse the request for it: it records
//!   the answer ([`GovernanceBypass`], per key for DeleteObjects) and `object_lock` uses it
//!   only where a governance retention is in the way, as S3 does.
//! - **Object Lock headers of GET and HEAD**: in a bucket with Object Lock and a policy, the
//!   retention headers are shown only to a caller allowed `s3:GetObjectRetention`, the legal
//!   hold only with `s3:GetObjectLegalHold` ([`LockHeaders`]), as S3 does; other buckets pay
//!   nothing for it.
//! - **403 or 404.** A caller allowed `s3:GetObject` but not `s3:ListBucket` must not learn
//!   whether a key exists: the gate marks such a request ([`HideMissing`], put there by
//!   `serve`) and `serve` answers its 404 as 403 AccessDenied. The owner always sees 404.
//!
//! - **Identity policies**: a signer with one (`identity`, set by `percore user policy set`)
//!   is judged by it and the bucket policy together everywhere above ([`allowed`] calls
//!   `identity::decide` with the caller's standing, `identity::Standing`: a Deny in either
//!   wins; its own buckets need an Allow in either, another user's an Allow in both, an ACL
//!   grant counting as the bucket's Allow); requests no bucket policy decides (ListBuckets,
//!   CreateBucket, the owner-only and owner-always operations) need an Allow in it, and an
//!   operation with no action is refused to it (`identity` module docs give the rule and the
//!   AWS logic it follows). Root and users without one are judged as described above.
//!
//! - **A user's other keys** (rotation, `user_admin`): ownership is judged by the user's id
//!   (its first key), whichever key signed, and the handler acts as the id ([`OwnerKey`]).
//!
//! Condition keys supplied ([`Facts`]): `aws:SourceIp` (the TCP peer, [`Peer`]),
//! `aws:SecureTransport`, `aws:CurrentTime`/`aws:EpochTime`, `aws:username` and
//! `aws:PrincipalArn` (signed callers), `aws:UserAgent`, `aws:Referer`, `s3:prefix`,
//! `s3:delimiter` and `s3:max-keys` (listings, when the request has them), `s3:VersionId`,
//! `s3:x-amz-acl`, `s3:x-amz-copy-source`, `s3:x-amz-metadata-directive`,
//! `s3:x-amz-storage-class`, `s3:x-amz-content-sha256`, `s3:signatureversion`, `s3:authType`.
//! Object tag keys are not supplied and a policy using them is refused (`bucket_policy`).
//!
//! The handler's ownership check (`Gateway::owned_bucket`) uses the bucket record the gate
//! judged by ([`with_gate_reads`], [`take_gate_read`]): one read of it per request, as before
//! the gate, and no window in which a bucket deleted and re-created between the gate and the
//! handler is acted on under the judgement of its old incarnation.

use std::cell::RefCell;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::HeaderMap;
use policy::{action_for, bucket_arn, object_arn, RequestContext};
use s3s::access::S3AccessContext;
use s3s::path::S3Path;
use s3s::{s3_error, S3Error, S3Result};

use crate::bucket_policy::Stored;
use crate::identity::Standing;
use crate::object_acl::{JudgedSource, JudgedVersion, ObjectGrant};
use crate::records::BucketRecord;
use crate::s3::s3_err;
use crate::s3::Gateway;
use crate::tls::SecureTransport;

/// The operations only a bucket's owner may call (module docs).
const OWNER_ONLY: [&str; 4] = [
    "PutBucketPolicy",
    "GetBucketPolicy",
    "DeleteBucketPolicy",
    "GetBucketPolicyStatus",
];

/// The bucket configuration operations a policy may grant to others but never deny to the
/// owner (`public_access`).
const OWNER_ALWAYS: [&str; 6] = [
    "PutPublicAccessBlock",
    "GetPublicAccessBlock",
    "DeletePublicAccessBlock",
    "PutBucketOwnershipControls",
    "GetBucketOwnershipControls",
    "DeleteBucketOwnershipControls",
];

tokio::task_local! {
    /// The bucket record (name, record, HLC) the gate judged the request being served by,
    /// until its handler's first ownership check takes it.
    static GATE_READ: RefCell<Option<(String, BucketRecord, u64)>>;
}

/// Runs `f` (a request through s3s: the gate, then the handler) with room for the record the
/// gate reads (module docs).
pub async fn with_gate_reads<F: Future>(f: F) -> F::Output {
    GATE_READ.scope(RefCell::new(None), f).await
}

/// The record of `bucket` the gate read for this request, once; `None` outside a request,
/// for another bucket, or when already taken (the caller reads it).
pub(crate) fn take_gate_read(bucket: &str) -> Option<(BucketRecord, u64)> {
    GATE_READ
        .try_with(|slot| {
            let mut slot = slot.borrow_mut();
            match slot.take() {
                Some((name, record, hlc)) if name == bucket => Some((record, hlc)),
                other => {
                    *slot = other;
                    None
                }
            }
        })
        .ok()
        .flatten()
}

fn keep_gate_read(bucket: &str, record: &BucketRecord, hlc: u64) {
    // Outside `with_gate_reads` (no server): the handler reads the record itself.
    let _ = GATE_READ.try_with(|slot| {
        *slot.borrow_mut() = Some((bucket.to_owned(), record.clone(), hlc));
    });
}

/// The client's address, put on every request by `serve` (`aws:SourceIp`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

/// Put on every request by `serve`; set by the gate when a 404 must be answered as 403
/// (module docs).
#[derive(Debug, Clone, Default)]
pub struct HideMissing(Arc<AtomicBool>);

impl HideMissing {
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the request's 404 must be a 403.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request the bucket policy let in for a caller who does not own the bucket: the handler
/// acts as `owner` (the bucket owner's access key).
#[derive(Debug, Clone)]
pub struct ActingFor {
    pub owner: String,
}

/// A request signed with a user's key other than its first: the handler acts as `id` (the
/// first key, the user's id, what its buckets record as their owner; `creds::Entry`), and
/// the gate judges ownership by it.
#[derive(Debug, Clone)]
pub struct OwnerKey(pub String);

/// Whether a DeleteObject or PutObjectRetention that asks to bypass governance retention
/// may (module docs), decided by the gate.
#[derive(Debug, Clone, Copy)]
pub struct GovernanceBypass(pub bool);

/// Whether `headers` ask to bypass governance retention (`x-amz-bypass-governance-retention`).
fn asks_bypass(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-bypass-governance-retention")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

/// For DeleteObject and PutObjectRetention: whether the gate granted the bypass the request
/// asks for (none decided: not granted).
pub fn bypass_granted(extensions: &http::Extensions) -> bool {
    extensions.get::<GovernanceBypass>().is_some_and(|b| b.0)
}

/// For DeleteObjects' handler: whether the request may bypass governance retention on
/// `key`, judged like the key's deletion ([`check_key_delete`]).
pub fn key_bypass_granted(extensions: &http::Extensions, key: &str) -> bool {
    match extensions.get::<KeyJudge>() {
        Some(judge) => {
            let ctx = judge.facts.context(
                "s3:BypassGovernanceRetention",
                object_arn(&judge.bucket, key),
            );
            // No ACL grants s3:BypassGovernanceRetention (`acl::permission_for`).
            let standing = Standing::of(judge.owner, false);
            allowed(standing, judge.policy.as_deref(), &judge.facts, &ctx)
        }
        // No policy: only the owner gets this far.
        None => extensions.get::<ActingFor>().is_none(),
    }
}

/// What a GET or HEAD may show of a version's Object Lock state (module docs): the retention
/// headers need `s3:GetObjectRetention`, the legal hold `s3:GetObjectLegalHold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHeaders {
    pub retention: bool,
    pub legal_hold: bool,
}

/// For GetObject and HeadObject: what the gate decided (none decided: the bucket has no
/// Object Lock or no policy, and only its owner gets this far: everything).
pub fn lock_headers(extensions: &http::Extensions) -> LockHeaders {
    extensions
        .get::<LockHeaders>()
        .copied()
        .unwrap_or(LockHeaders {
            retention: true,
            legal_hold: true,
        })
}

/// What a DeleteObjects handler needs to judge each key (module docs).
#[derive(Debug, Clone)]
pub struct KeyJudge {
    bucket: String,
    owner: bool,
    /// The bucket's ACL lets the caller delete keys (`acl`).
    granted: bool,
    policy: Option<Arc<Stored>>,
    facts: Facts,
}

/// The request's condition values, taken once from the request (module docs).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    user: Option<String>,
    /// The signer's identity policy, if it has one (`identity`).
    identity: Option<Arc<policy::Policy>>,
    values: Vec<(Key, String)>,
    ip: Option<IpAddr>,
    tls: bool,
    now_secs: i64,
    max_keys: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Key {
    UserAgent,
    Referer,
    Prefix,
    Delimiter,
    VersionId,
    Acl,
    CopySource,
    MetadataDirective,
    StorageClass,
    ContentSha256,
    SignatureVersion,
    AuthType,
}

impl Facts {
    /// The facts of a request by `user` (a user name; `None`: anonymous), signed as
    /// `signature` says (`s3:signatureversion`, `s3:authType`: [`Judged::signature`]).
    pub fn of(
        user: Option<String>,
        headers: &HeaderMap,
        query: &str,
        (signature, auth_type): (Option<&str>, Option<&str>),
        peer: Option<IpAddr>,
        tls: bool,
        now_secs: i64,
    ) -> Facts {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut values = Vec::new();
        let mut add = |key, value: Option<&str>| {
            if let Some(v) = value {
                values.push((key, v.to_owned()));
            }
        };
        add(Key::UserAgent, header("user-agent"));
        add(Key::Referer, header("referer"));
        add(Key::Acl, header("x-amz-acl"));
        add(Key::MetadataDirective, header("x-amz-metadata-directive"));
        add(Key::StorageClass, header("x-amz-storage-class"));
        add(Key::ContentSha256, header("x-amz-content-sha256"));
        let copy_source = header("x-amz-copy-source").map(|s| {
            let path = s.split_once('?').map_or(s, |(p, _)| p);
            crate::access::percent_decode(path.trim_start_matches('/'))
        });
        add(Key::CopySource, copy_source.as_deref());
        let prefix = query_param(query, "prefix");
        add(Key::Prefix, prefix.as_deref());
        let delimiter = query_param(query, "delimiter");
        add(Key::Delimiter, delimiter.as_deref());
        let version_id = query_param(query, "versionId");
        add(Key::VersionId, version_id.as_deref());
        add(Key::SignatureVersion, signature);
        add(Key::AuthType, auth_type);
        Facts {
            user,
            identity: None,
            values,
            ip: peer,
            tls,
            now_secs,
            max_keys: query_param(query, "max-keys").and_then(|v| v.parse().ok()),
        }
    }

    /// The facts of a request whose signer has the identity policy `identity`.
    #[must_use]
    pub fn with_identity(mut self, identity: Option<Arc<policy::Policy>>) -> Facts {
        self.identity = identity;
        self
    }

    /// The signer's identity policy, if it has one.
    pub fn identity(&self) -> Option<&policy::Policy> {
        self.identity.as_deref()
    }

    /// The policy context of `action` on `resource` for this request.
    pub fn context(&self, action: &str, resource: String) -> RequestContext {
        let mut ctx = RequestContext::new(self.user.as_deref(), action, resource)
            .with_secure_transport(self.tls)
            .with_current_time(self.now_secs);
        if let Some(ip) = self.ip {
            ctx = ctx.with_source_ip(ip);
        }
        if let Some(n) = self.max_keys {
            ctx = ctx.with_max_keys(n);
        }
        for (key, v) in &self.values {
            ctx = match key {
                Key::UserAgent => ctx.with_user_agent(v),
                Key::Referer => ctx.with_referer(v),
                Key::Prefix => ctx.with_prefix(v),
                Key::Delimiter => ctx.with_delimiter(v),
                Key::VersionId => ctx.with_version_id(v),
                Key::Acl => ctx.with_acl(v),
                Key::CopySource => ctx.with_copy_source(v),
                Key::MetadataDirective => ctx.with_metadata_directive(v),
                Key::StorageClass => ctx.with_storage_class(v),
                Key::ContentSha256 => ctx.with_content_sha256(v),
                Key::SignatureVersion => ctx.with_signature_version(v),
                Key::AuthType => ctx.with_auth_type(v),
            };
        }
        ctx
    }
}

/// `s3:signatureversion` and `s3:authType` of a signed request.
fn signature_of(headers: &HeaderMap, query: &str) -> (Option<&'static str>, Option<&'static str>) {
    if query_param(query, "X-Amz-Algorithm").is_some() {
        return (Some("AWS4-HMAC-SHA256"), Some("REST-QUERY-STRING"));
    }
    if query_param(query, "Signature").is_some() {
        return (Some("AWS"), Some("REST-QUERY-STRING"));
    }
    match headers
        .get("authorization")
        .map(http::HeaderValue::as_bytes)
    {
        Some(v) if v.starts_with(b"AWS4-HMAC-SHA256") => {
            (Some("AWS4-HMAC-SHA256"), Some("REST-HEADER"))
        }
        Some(v) if v.starts_with(b"AWS ") => (Some("AWS"), Some("REST-HEADER")),
        _ => (None, None),
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    crate::access::query_param(query, name)
}

fn denied() -> S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// What the bucket's policy and the signer's identity policy (in `facts`) say about one
/// request, for a caller of `standing` (the owner, a caller the bucket's ACL grants the
/// action, anyone else: `identity::decide`).
fn allowed(
    standing: Standing,
    policy: Option<&Stored>,
    facts: &Facts,
    ctx: &RequestContext,
) -> bool {
    crate::identity::decide(standing, facts.identity(), policy.map(|s| &s.policy), ctx)
}

/// What [`judge`] reads of a request: s3s's access context, or a browser POST upload
/// (`post_upload`), which reaches no s3s hook.
pub trait Judged {
    fn op_name(&self) -> &str;
    fn access_key(&self) -> Option<&str>;
    fn s3_path(&self) -> &S3Path;
    fn query(&self) -> &str;
    fn headers(&self) -> &HeaderMap;
    fn extensions_mut(&mut self) -> &mut http::Extensions;
    /// `s3:signatureversion` and `s3:authType`: by default read from the signature's headers
    /// or query.
    fn signature(&self) -> (Option<&'static str>, Option<&'static str>) {
        signature_of(self.headers(), self.query())
    }
}

impl Judged for S3AccessContext<'_> {
    fn op_name(&self) -> &str {
        self.s3_op().name()
    }
    fn access_key(&self) -> Option<&str> {
        self.credentials().map(|c| c.access_key.as_str())
    }
    fn s3_path(&self) -> &S3Path {
        S3AccessContext::s3_path(self)
    }
    fn query(&self) -> &str {
        self.uri().query().unwrap_or("")
    }
    fn headers(&self) -> &HeaderMap {
        S3AccessContext::headers(self)
    }
    fn extensions_mut(&mut self) -> &mut http::Extensions {
        S3AccessContext::extensions_mut(self)
    }
}

/// The judgement of one request (module docs).
pub async fn judge(gateway: &Gateway, cx: &mut impl Judged) -> S3Result<()> {
    let op_name = cx.op_name().to_owned();
    let op = op_name.as_str();
    let signer = cx.access_key().map(str::to_owned);
    // Ownership is judged by the user's id, whichever of its keys signed (`OwnerKey`).
    let access_key = match &signer {
        None => None,
        Some(k) => Some(owner_key(gateway, cx, k)?),
    };
    let query = cx.query().to_owned();
    // A signer with an identity policy: its facts now, for the checks no bucket policy makes.
    let early = match signer.as_deref().and_then(|k| identity_of(gateway, k)) {
        None => None,
        Some(identity) => Some(
            request_facts(gateway, cx, signer.as_deref(), &query)?.with_identity(Some(identity)),
        ),
    };
    let version = query_param(&query, "versionId").is_some();
    let (bucket, key) = match cx.s3_path() {
        S3Path::Root => {
            identity_requires(early.as_ref(), op, version, "", "")?;
            return signed_only(access_key.as_ref());
        }
        S3Path::Bucket { bucket } => (bucket.to_string(), None),
        S3Path::Object { bucket, key } => (bucket.to_string(), Some(key.to_string())),
    };
    if op == "CreateBucket" {
        identity_requires(early.as_ref(), op, version, &bucket, "")?;
        return signed_only(access_key.as_ref());
    }
    let Some(required) = action_for(op, version) else {
        // Nothing could deny it to a user an identity policy restricts.
        if early.is_some() {
            return Err(denied());
        }
        return signed_only(access_key.as_ref());
    };
    let Some((record, hlc)) = gateway.store.bucket_entry(&bucket).await.map_err(s3_err)? else {
        return Err(s3_error!(NoSuchBucket));
    };
    keep_gate_read(&bucket, &record, hlc);
    let owner = access_key.as_deref() == Some(record.owner.as_str());
    let object = key.as_deref().unwrap_or("");
    if OWNER_ONLY.contains(&op) {
        return if owner {
            identity_requires(early.as_ref(), op, version, &bucket, object)
        } else {
            Err(denied())
        };
    }
    if owner && OWNER_ALWAYS.contains(&op) {
        return identity_requires(early.as_ref(), op, version, &bucket, object);
    }
    let stored = gateway.bucket_policy(&record.scope(&bucket)).await?;
    let bypass = matches!(op, "DeleteObject" | "PutObjectRetention") && asks_bypass(cx.headers());
    if bypass && stored.is_none() {
        cx.extensions_mut().insert(GovernanceBypass(owner));
    }
    // What the bucket's ACL grants a caller who is not the owner (`acl`): allowed unless the
    // policy denies it, like the owner.
    let mut granted = !owner
        && gateway
            .acl_grants(
                &record.scope(&bucket),
                access_key.as_deref(),
                required.action,
            )
            .await?;
    let with_identity = early.is_some();
    let mut facts = early;
    // What the object's own ACL grants (`object_acl`): read only for the operations it
    // decides, for a caller nothing else lets in yet (the bucket owner: where writers may own
    // objects).
    if let (Some(permission), Some(k)) = (crate::object_acl::permission_for(op), key.as_deref()) {
        let mut moot = !owner && granted;
        if let (false, false, Some(_)) = (owner, granted, &stored) {
            // A policy that already allows the caller makes the object's ACL moot.
            let f = match facts.take() {
                Some(f) => f,
                None => request_facts(gateway, cx, signer.as_deref(), &query)?,
            };
            let ctx = f.context(required.action, required.resource_arn(&bucket, k));
            moot = allowed(Standing::Other, stored.as_deref(), &f, &ctx);
            facts = Some(f);
        }
        if !moot {
            let version_id = query_param(&query, "versionId");
            let judged = gateway
                .object_grant(
                    (&bucket, &record.scope(&bucket), &record.owner),
                    (k, version_id.as_deref()),
                    access_key.as_deref(),
                    (permission, owner),
                )
                .await;
            // The object read took the gate's bucket read: keep it for the handler.
            keep_gate_read(&bucket, &record, hlc);
            match judged? {
                ObjectGrant::Granted(v) => {
                    granted |= !owner;
                    cx.extensions_mut().insert(JudgedVersion(v));
                }
                ObjectGrant::Refused if owner => return Err(denied()),
                ObjectGrant::Moot | ObjectGrant::Refused => {}
            }
        }
    }
    // Without a policy (bucket or identity) nothing can deny the owner nor allow anyone else
    // but the ACL: decided before the request's facts are gathered (the common case costs a
    // cache lookup). A copy still has its source judged; a caller the ACL lets in acts as the
    // owner (below).
    if stored.is_none()
        && !with_identity
        && !granted
        && !matches!(op, "CopyObject" | "UploadPartCopy")
    {
        return if owner { Ok(()) } else { Err(denied()) };
    }
    let facts = match facts {
        Some(facts) => facts,
        None => request_facts(gateway, cx, signer.as_deref(), &query)?,
    };
    if let (false, Some(s)) = (owner, &stored) {
        let scope = record.scope(&bucket);
        if gateway
            .restricted(&scope, &s.policy, facts.user.as_deref())
            .await?
        {
            return Err(denied());
        }
    }
    if op == "DeleteObjects" {
        // Judged per key by the handler; another user needs a policy or a grant to get that far.
        if !owner && !granted && stored.is_none() {
            return Err(denied());
        }
        // A grant deletes keys, not given versions: judged per key too.
        if stored.is_some() || granted || facts.identity().is_some() {
            cx.extensions_mut().insert(KeyJudge {
                bucket: bucket.clone(),
                owner,
                granted,
                policy: stored,
                facts,
            });
        }
        if !owner {
            cx.extensions_mut().insert(ActingFor {
                owner: record.owner,
            });
        }
        return Ok(());
    }
    let resource = required.resource_arn(&bucket, key.as_deref().unwrap_or(""));
    if !allowed(
        Standing::of(owner, granted),
        stored.as_deref(),
        &facts,
        &facts.context(required.action, resource),
    ) {
        return Err(denied());
    }
    if matches!(op, "CopyObject" | "UploadPartCopy") {
        let judged = check_copy_source(gateway, cx.headers(), access_key.as_deref(), &facts).await;
        // Reading the source may have taken the gate's bucket read: keep it for the handler.
        keep_gate_read(&bucket, &record, hlc);
        if let Some(v) = judged? {
            cx.extensions_mut().insert(JudgedSource(v));
        }
    }
    if !owner && matches!(op, "PutObject" | "CopyObject" | "CreateMultipartUpload") {
        let object = object_arn(&bucket, key.as_deref().unwrap_or(""));
        check_lock_headers(cx.headers(), stored.as_deref(), &facts, &object)?;
    }
    if record.object_lock && matches!(op, "GetObject" | "HeadObject") {
        let object = object_arn(&bucket, key.as_deref().unwrap_or(""));
        // No ACL grants s3:GetObjectRetention or s3:GetObjectLegalHold.
        let see = |action| {
            allowed(
                Standing::of(owner, false),
                stored.as_deref(),
                &facts,
                &facts.context(action, object.clone()),
            )
        };
        let shown = LockHeaders {
            retention: see("s3:GetObjectRetention"),
            legal_hold: see("s3:GetObjectLegalHold"),
        };
        cx.extensions_mut().insert(shown);
    }
    if bypass {
        let object = object_arn(&bucket, key.as_deref().unwrap_or(""));
        let ctx = facts.context("s3:BypassGovernanceRetention", object);
        let granted = allowed(Standing::of(owner, false), stored.as_deref(), &facts, &ctx);
        cx.extensions_mut().insert(GovernanceBypass(granted));
    }
    if !owner {
        let reads = matches!(required.action, "s3:GetObject" | "s3:GetObjectVersion");
        let acl_lists = reads
            && gateway
                .acl_grants(
                    &record.scope(&bucket),
                    access_key.as_deref(),
                    "s3:ListBucket",
                )
                .await?;
        let lists = allowed(
            Standing::of(false, acl_lists),
            stored.as_deref(),
            &facts,
            &facts.context("s3:ListBucket", bucket_arn(&bucket)),
        );
        if reads && !lists {
            if let Some(hide) = cx.extensions_mut().get::<HideMissing>() {
                hide.set();
            }
        }
        cx.extensions_mut().insert(ActingFor {
            owner: record.owner,
        });
    }
    Ok(())
}

/// A write by a caller who is not the owner that sets a retention or a legal hold needs
/// `s3:PutObjectRetention` / `s3:PutObjectLegalHold` from the policy, as in S3: a grant to
/// write (a policy's `s3:PutObject`, an ACL's WRITE) must not let anyone lock the owner's
/// bucket full of versions nobody may delete.
fn check_lock_headers(
    headers: &HeaderMap,
    policy: Option<&Stored>,
    facts: &Facts,
    object: &str,
) -> S3Result<()> {
    let asks = |names: &[&str]| names.iter().any(|n| headers.contains_key(*n));
    let needs: [(&[&str], &str); 2] = [
        (
            &[
                "x-amz-object-lock-mode",
                "x-amz-object-lock-retain-until-date",
            ],
            "s3:PutObjectRetention",
        ),
        (&["x-amz-object-lock-legal-hold"], "s3:PutObjectLegalHold"),
    ];
    for (names, action) in needs {
        if asks(names)
            && !allowed(
                // Judged as anyone else's: no ACL grants them (module docs).
                Standing::Other,
                policy,
                facts,
                &facts.context(action, object.to_owned()),
            )
        {
            return Err(denied());
        }
    }
    Ok(())
}

fn signed_only(access_key: Option<&String>) -> S3Result<()> {
    match access_key {
        Some(_) => Ok(()),
        None => Err(denied()),
    }
}

fn user_name(gateway: &Gateway, access_key: &str) -> S3Result<String> {
    gateway
        .policies
        .users()
        .and_then(|u| u.by_access_key(access_key).map(|u| u.name.clone()))
        // The user was deleted since s3s checked the signature (`live_users`).
        .ok_or_else(|| s3_error!(InvalidAccessKeyId))
}

/// The id of the user who signed with `access_key` (module docs of `OwnerKey`), put on the
/// request for the handler when it is not that key.
fn owner_key(gateway: &Gateway, cx: &mut impl Judged, access_key: &str) -> S3Result<String> {
    let id = gateway
        .policies
        .users()
        .and_then(|u| u.id_of(access_key).map(str::to_owned))
        // The key was deleted since s3s checked the signature (`live_users`).
        .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
    if id != access_key {
        cx.extensions_mut().insert(OwnerKey(id.clone()));
    }
    Ok(id)
}

/// The identity policy of the signer of `access_key`, if it has one.
fn identity_of(gateway: &Gateway, access_key: &str) -> Option<Arc<policy::Policy>> {
    let users = gateway.policies.users()?;
    crate::identity::policy_of(&users, access_key)
}

/// The request's condition values (module docs), for the signer of `access_key`.
fn request_facts(
    gateway: &Gateway,
    cx: &mut impl Judged,
    access_key: Option<&str>,
    query: &str,
) -> S3Result<Facts> {
    let user = match access_key {
        None => None,
        Some(k) => Some(user_name(gateway, k)?),
    };
    let peer = cx.extensions_mut().get::<Peer>().map(|p| p.0);
    let tls = cx.extensions_mut().get::<SecureTransport>().is_some();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(Facts::of(
        user,
        cx.headers(),
        query,
        cx.signature(),
        peer,
        tls,
        now,
    ))
}

/// For a request no bucket policy decides: with an identity policy (in `facts`), its Allow
/// of the operation's action is needed (`identity`, rule 4); without one, nothing more.
fn identity_requires(
    facts: Option<&Facts>,
    op: &str,
    version: bool,
    bucket: &str,
    key: &str,
) -> S3Result<()> {
    let Some((facts, identity)) = facts.and_then(|f| Some((f, f.identity()?))) else {
        return Ok(());
    };
    let Some(required) = action_for(op, version) else {
        return Err(denied());
    };
    let ctx = facts.context(required.action, required.resource_arn(bucket, key));
    if crate::identity::require(identity, &ctx) {
        Ok(())
    } else {
        Err(denied())
    }
}

/// `s3:GetObject` on a copy's source (module docs), from the source bucket's policy or the
/// source version's own ACL (`object_acl`: the version judged by it is returned, for the
/// handler to copy that one or none). A malformed or missing header, or a source bucket that
/// does not exist, is left to the handler's error.
async fn check_copy_source(
    gateway: &Gateway,
    headers: &HeaderMap,
    access_key: Option<&str>,
    facts: &Facts,
) -> S3Result<Option<[u8; 12]>> {
    let Some(source) = headers
        .get("x-amz-copy-source")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let (path, query) = source.split_once('?').unwrap_or((source, ""));
    let path = crate::access::percent_decode(path.trim_start_matches('/'));
    let Some((bucket, key)) = path.split_once('/') else {
        return Ok(None);
    };
    let Some(record) = gateway.store.bucket(bucket).await.map_err(s3_err)? else {
        return Ok(None);
    };
    let owner = access_key == Some(record.owner.as_str());
    let stored = gateway.bucket_policy(&record.scope(bucket)).await?;
    if let (false, Some(s)) = (owner, &stored) {
        let scope = record.scope(bucket);
        if gateway
            .restricted(&scope, &s.policy, facts.user.as_deref())
            .await?
        {
            return Err(denied());
        }
    }
    let action = if query_param(query, "versionId").is_some() {
        "s3:GetObjectVersion"
    } else {
        "s3:GetObject"
    };
    let ctx = facts.context(action, object_arn(bucket, key));
    // A bucket ACL grants no object reads (`acl::permission_for`); the source's own ACL may,
    // read unless the policy already allows a caller who is not the owner (for the owner:
    // where writers may own objects, an object owned by another must grant it READ).
    let judged = if owner || !allowed(Standing::Other, stored.as_deref(), facts, &ctx) {
        let version_id = query_param(query, "versionId");
        gateway
            .object_grant(
                (bucket, &record.scope(bucket), &record.owner),
                (key, version_id.as_deref()),
                access_key,
                (crate::acl::Permission::Read, owner),
            )
            .await?
    } else {
        ObjectGrant::Moot
    };
    let (granted, version) = match judged {
        ObjectGrant::Refused if owner => return Err(denied()),
        ObjectGrant::Granted(v) => (!owner, Some(v)),
        ObjectGrant::Moot | ObjectGrant::Refused => (false, None),
    };
    if allowed(Standing::of(owner, granted), stored.as_deref(), facts, &ctx) {
        Ok(version)
    } else {
        Err(denied())
    }
}

/// For DeleteObjects' handler: whether the request may delete `key` (`version`: a version
/// id), as the gate judged the request (no [`KeyJudge`]: the owner, with no policy).
pub fn check_key_delete(
    extensions: &http::Extensions,
    key: &str,
    version: Option<&str>,
) -> S3Result<()> {
    let Some(judge) = extensions.get::<KeyJudge>() else {
        return Ok(());
    };
    let action = if version.is_some() {
        "s3:DeleteObjectVersion"
    } else {
        "s3:DeleteObject"
    };
    let mut ctx = judge.facts.context(action, object_arn(&judge.bucket, key));
    if let Some(v) = version {
        ctx = ctx.with_version_id(v);
    }
    // A bucket WRITE grant gives s3:DeleteObject, not s3:DeleteObjectVersion (`acl`).
    let granted = judge.granted && version.is_none();
    if allowed(
        Standing::of(judge.owner, granted),
        judge.policy.as_deref(),
        &judge.facts,
        &ctx,
    ) {
        Ok(())
    } else {
        Err(denied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str) -> Stored {
        Stored {
            text: text.to_owned(),
            policy: policy::Policy::parse_bucket(text.as_bytes(), "b").unwrap(),
        }
    }

    #[test]
    fn owner_needs_no_allow_others_do_and_deny_wins() {
        let p = stored(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
             "Resource":"arn:aws:s3:::b/pub/*"},
            {"Effect":"Deny","Principal":"*","Action":"s3:GetObject",
             "Resource":"arn:aws:s3:::b/pub/secret"}]}"#,
        );
        let facts = |user: Option<&str>| Facts {
            user: user.map(str::to_owned),
            ..Facts::default()
        };
        let get = |user, key: &str| facts(user).context("s3:GetObject", object_arn("b", key));
        let f = Facts::default();
        // (standing, bucket policy, caller, key, allowed)
        let cases = [
            (Standing::Owner, None, Some("root"), "x", true),
            (Standing::Owner, Some(&p), Some("root"), "x", true),
            (Standing::Owner, Some(&p), Some("root"), "pub/secret", false),
            (Standing::Other, Some(&p), None, "pub/a", true),
            (Standing::Other, Some(&p), Some("alice"), "pub/a", true),
            (Standing::Other, Some(&p), None, "x", false),
            (Standing::Other, None, Some("alice"), "pub/a", false),
            (Standing::Other, Some(&p), None, "pub/secret", false),
        ];
        for (i, (standing, policy, user, key, expected)) in cases.into_iter().enumerate() {
            let ctx = get(user, key);
            assert_eq!(allowed(standing, policy, &f, &ctx), expected, "case {i}");
        }
    }

    #[test]
    fn facts_from_a_request() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-copy-source",
            "/src/a%20b?versionId=v".parse().unwrap(),
        );
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=x".parse().unwrap(),
        );
        let query = "prefix=home%2F&max-keys=10&list-type=2";
        let f = Facts::of(
            Some("alice".into()),
            &headers,
            query,
            signature_of(&headers, query),
            Some("10.1.2.3".parse().unwrap()),
            true,
            0,
        );
        let ctx = f.context("s3:ListBucket", bucket_arn("b"));
        assert_eq!(ctx.values("s3:prefix"), ["home/"]);
        assert_eq!(ctx.values("s3:max-keys"), ["10"]);
        assert_eq!(ctx.values("s3:x-amz-copy-source"), ["src/a b"]);
        assert_eq!(ctx.values("aws:SourceIp"), ["10.1.2.3"]);
        assert_eq!(ctx.values("aws:SecureTransport"), ["true"]);
        assert_eq!(ctx.values("s3:authType"), ["REST-HEADER"]);
        assert_eq!(ctx.values("aws:username"), ["alice"]);
        assert!(ctx.values("s3:delimiter").is_empty());
    }
}
