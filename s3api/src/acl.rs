//! Bucket ACLs: what a bucket's access control list grants, how it is asked for (canned ACLs,
//! `x-amz-grant-*` headers, AccessControlPolicy bodies), its record, and the grant the access
//! gate (`authz`) reads from it.
//!
//! **Who is who.** A grantee is a user by canonical id (the id Owner elements show: the
//! user's access key), the AllUsers group (anyone, anonymous callers included) or the
//! AuthenticatedUsers group (any signed user). Email grantees and the LogDelivery group are
//! refused with NotImplemented: percore has neither emails nor log delivery; an unknown
//! canonical id is InvalidArgument, as in S3.
//!
//! **What a grant gives** on a bucket (S3's mapping; FULL_CONTROL is all four):
//! READ: ListObjects(V2), ListObjectVersions, ListMultipartUploads, HeadBucket;
//! WRITE: PutObject (CopyObject's destination, multipart uploads with their ListParts and
//! Abort) and DeleteObject(s) (not of a given version: S3 keeps that to the owner);
//! READ_ACP: GetBucketAcl; WRITE_ACP: PutBucketAcl. The owner always has everything; a
//! caller let in by a grant acts as the bucket owner (`authz::ActingFor`: what it writes
//! belongs to the bucket owner). An explicit Deny in the bucket policy beats any grant
//! (`authz`). Objects have ACLs of their own (`object_acl`), encoded as this record is.
//!
//! **Record.** `R` ‖ scope ‖ `\0` ‖ `acl` (`bucket_config`): format byte 1 ‖ grant count u16
//! LE ‖ per grant: permission u8 (1 READ, 2 WRITE, 3 READ_ACP, 4 WRITE_ACP, 5 FULL_CONTROL) ‖
//! grantee kind u8 (0 user, 1 AllUsers, 2 AuthenticatedUsers) ‖ for a user, id length u16 LE ‖
//! id bytes. At most [`ACL_GRANTS_MAX`] grants (S3's bound). No record: `private` (the owner's
//! FULL_CONTROL only). Keyed by the scope, it dies with the bucket's incarnation.
//!
//! **Object ownership.** percore's default for a bucket without ownership controls is ACLs
//! enabled, the bucket owner owning every object whoever writes it; ObjectWriter and
//! BucketOwnerPreferred let writers own objects (`object_acl`). With BucketOwnerEnforced stored
//! (CreateBucket's `x-amz-object-ownership` or PutBucketOwnershipControls), ACLs are disabled
//! as in S3: a stored ACL counts for nothing, GetBucketAcl shows the owner-only ACL, and
//! setting any ACL but an owner-only one, on the bucket or an object, answers 400
//! AccessControlListNotSupported. The cache ([`State`]) keeps the ownership with the ACL.
//!
//! **Public access block.** BlockPublicAcls refuses a public ACL (a grant to AllUsers or
//! AuthenticatedUsers) with 403 AccessDenied; IgnorePublicAcls makes the stored public grants
//! count for nothing (`public_access`).
//!
//! The gate reads a bucket's effective ACL only for callers who do not own the bucket, through
//! [`State`], a cache per scope like the policy's (`CACHE_TTL`): PutBucketAcl and the ownership
//! calls drop the entry on the gateway that served them; another gateway sees the change within
//! the TTL.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use s3s::dto::{
    AccessControlPolicy, CreateBucketInput, GetBucketAclInput, GetBucketAclOutput,
    Grant as DtoGrant, Grantee as DtoGrantee, Owner, Permission as DtoPermission,
    PutBucketAclInput, PutBucketAclOutput, Type,
};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use crate::creds::Users;
use crate::public_access::{Ownership, CACHE_TTL};
use crate::records::Malformed;
use crate::s3::s3_err;
use crate::s3::{user_of, Gateway};
use crate::ttl_cache::TtlCache;

const VERSION: u8 = 1;
/// The configuration record's name (`bucket_config`).
pub const ACL_CONFIG: &str = "acl";
/// Grants one ACL holds at most (S3's bound).
pub const ACL_GRANTS_MAX: usize = 100;
/// Bytes of one grantee id at most (the record's u16 length; ids are access keys).
pub const ACL_ID_BYTES_MAX: usize = 256;
/// Scopes the cache holds at most.
pub const CACHE_ENTRIES_MAX: usize = 4096;
/// Bytes the cache holds at most (an entry counts its scope, its ids and a fixed overhead).
pub const CACHE_BYTES_MAX: usize = 4 << 20;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

/// What a grant gives (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read = 1,
    Write = 2,
    ReadAcp = 3,
    WriteAcp = 4,
    FullControl = 5,
}

impl Permission {
    fn of_code(b: u8) -> Option<Permission> {
        Some(match b {
            1 => Permission::Read,
            2 => Permission::Write,
            3 => Permission::ReadAcp,
            4 => Permission::WriteAcp,
            5 => Permission::FullControl,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Permission::Read => DtoPermission::READ,
            Permission::Write => DtoPermission::WRITE,
            Permission::ReadAcp => DtoPermission::READ_ACP,
            Permission::WriteAcp => DtoPermission::WRITE_ACP,
            Permission::FullControl => DtoPermission::FULL_CONTROL,
        }
    }

    fn of_name(s: &str) -> Option<Permission> {
        [
            Permission::Read,
            Permission::Write,
            Permission::ReadAcp,
            Permission::WriteAcp,
            Permission::FullControl,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }

    fn gives(self, wanted: Permission) -> bool {
        self == wanted || self == Permission::FullControl
    }
}

/// Who a grant is for (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// A user, by canonical id (access key).
    User(String),
    AllUsers,
    AuthenticatedUsers,
}

impl Grantee {
    fn is_public(&self) -> bool {
        !matches!(self, Grantee::User(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// A bucket's access control list (module docs). The owner is the bucket's, not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub grants: Vec<Grant>,
}

impl Acl {
    /// `private`: the owner's FULL_CONTROL.
    pub fn private(owner: &str) -> Acl {
        Acl {
            grants: vec![Grant {
                grantee: Grantee::User(owner.to_owned()),
                permission: Permission::FullControl,
            }],
        }
    }

    /// Whether it grants anything to a public group.
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| g.grantee.is_public())
    }

    /// Whether it grants nothing to anyone but `owner`.
    fn owner_only(&self, owner: &str) -> bool {
        self.grants
            .iter()
            .all(|g| g.grantee == Grantee::User(owner.to_owned()))
    }

    /// Whether it gives `permission` to the caller (`access_key`; `None`: anonymous).
    /// `ignore_public`: public grants count for nothing (IgnorePublicAcls).
    pub fn allows(
        &self,
        access_key: Option<&str>,
        permission: Permission,
        ignore_public: bool,
    ) -> bool {
        self.grants.iter().any(|g| {
            let matches = match &g.grantee {
                Grantee::User(id) => access_key == Some(id.as_str()),
                Grantee::AllUsers => !ignore_public,
                Grantee::AuthenticatedUsers => !ignore_public && access_key.is_some(),
            };
            matches && g.permission.gives(permission)
        })
    }

    pub fn encode(&self) -> Bytes {
        assert!(self.grants.len() <= ACL_GRANTS_MAX);
        let mut b = BytesMut::new();
        b.put_u8(VERSION);
        b.put_u16_le(self.grants.len() as u16);
        for g in &self.grants {
            b.put_u8(g.permission as u8);
            match &g.grantee {
                Grantee::User(id) => {
                    assert!(id.len() <= ACL_ID_BYTES_MAX);
                    b.put_u8(0);
                    b.put_u16_le(id.len() as u16);
                    b.put_slice(id.as_bytes());
                }
                Grantee::AllUsers => b.put_u8(1),
                Grantee::AuthenticatedUsers => b.put_u8(2),
            }
        }
        b.freeze()
    }

    pub fn decode(b: &[u8]) -> Result<Acl, Malformed> {
        let (&version, mut rest) = b.split_first().ok_or(Malformed("bucket acl: empty"))?;
        if version != VERSION {
            return Err(Malformed("bucket acl: unknown format"));
        }
        let count = usize::from(take_u16(&mut rest)?);
        if count > ACL_GRANTS_MAX {
            return Err(Malformed("bucket acl: too many grants"));
        }
        let mut grants = Vec::with_capacity(count);
        for _ in 0..count {
            let permission = Permission::of_code(take(&mut rest, 1)?[0])
                .ok_or(Malformed("bucket acl: permission"))?;
            let grantee = match take(&mut rest, 1)?[0] {
                0 => {
                    let len = usize::from(take_u16(&mut rest)?);
                    let id = std::str::from_utf8(take(&mut rest, len)?)
                        .map_err(|_| Malformed("bucket acl: id is not UTF-8"))?;
                    Grantee::User(id.to_owned())
                }
                1 => Grantee::AllUsers,
                2 => Grantee::AuthenticatedUsers,
                _ => return Err(Malformed("bucket acl: grantee kind")),
            };
            grants.push(Grant {
                grantee,
                permission,
            });
        }
        if !rest.is_empty() {
            return Err(Malformed("bucket acl: trailing bytes"));
        }
        Ok(Acl { grants })
    }

    /// The Owner and Grant elements of a Get*Acl answer.
    pub fn to_dto(&self, owner: &str) -> (Owner, Vec<DtoGrant>) {
        let grants = self
            .grants
            .iter()
            .map(|g| DtoGrant {
                grantee: Some(match &g.grantee {
                    Grantee::User(id) => DtoGrantee {
                        display_name: Some(id.clone()),
                        email_address: None,
                        id: Some(id.clone()),
                        type_: Type::from_static(Type::CANONICAL_USER),
                        uri: None,
                    },
                    group => DtoGrantee {
                        display_name: None,
                        email_address: None,
                        id: None,
                        type_: Type::from_static(Type::GROUP),
                        uri: Some(
                            if *group == Grantee::AllUsers {
                                ALL_USERS
                            } else {
                                AUTHENTICATED_USERS
                            }
                            .to_owned(),
                        ),
                    },
                }),
                permission: Some(DtoPermission::from_static(g.permission.name())),
            })
            .collect();
        let owner = Owner {
            display_name: Some(owner.to_owned()),
            id: Some(owner.to_owned()),
        };
        (owner, grants)
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], Malformed> {
    let (head, tail) = rest
        .split_at_checked(n)
        .ok_or(Malformed("bucket acl: truncated"))?;
    *rest = tail;
    Ok(head)
}

fn take_u16(rest: &mut &[u8]) -> Result<u16, Malformed> {
    let b = take(rest, 2)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

/// The ACL a bucket canned ACL stands for (an unknown one: InvalidArgument). `aws-exec-read` and
/// `log-delivery-write` grant to AWS services percore does not have: NotImplemented.
/// `bucket-owner-*` are about objects: S3 ignores them on a bucket (private).
pub fn canned_bucket(value: &str, owner: &str) -> S3Result<Acl> {
    let mut acl = Acl::private(owner);
    let mut add = |grantee, permission| {
        acl.grants.push(Grant {
            grantee,
            permission,
        });
    };
    match value {
        "private" | "bucket-owner-read" | "bucket-owner-full-control" => {}
        "public-read" => add(Grantee::AllUsers, Permission::Read),
        "public-read-write" => {
            add(Grantee::AllUsers, Permission::Read);
            add(Grantee::AllUsers, Permission::Write);
        }
        "authenticated-read" => add(Grantee::AuthenticatedUsers, Permission::Read),
        "aws-exec-read" | "log-delivery-write" => {
            return Err(s3_error!(
                NotImplemented,
                "x-amz-acl: {value} grants to an AWS service percore does not have"
            ))
        }
        _ => return Err(s3_error!(InvalidArgument, "x-amz-acl: unknown canned ACL")),
    }
    Ok(acl)
}

/// The grantee of one `type=value` item of an `x-amz-grant-*` header or of a body.
fn grantee_of(kind: &str, value: &str, users: Option<&Users>) -> S3Result<Grantee> {
    match kind {
        "id" => {
            if users.and_then(|u| u.by_access_key(value)).is_none() {
                return Err(s3_error!(InvalidArgument, "Invalid id: {value}"));
            }
            Ok(Grantee::User(value.to_owned()))
        }
        "uri" => match value {
            ALL_USERS => Ok(Grantee::AllUsers),
            AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
            LOG_DELIVERY => Err(s3_error!(
                NotImplemented,
                "the LogDelivery group is not supported: percore has no log delivery"
            )),
            _ => Err(s3_error!(InvalidArgument, "Invalid group uri: {value}")),
        },
        "emailAddress" => Err(s3_error!(
            NotImplemented,
            "grantees by email address are not supported: percore users have no email; grant \
             by id"
        )),
        _ => Err(s3_error!(
            InvalidArgument,
            "Argument format not recognized: {kind} (id, uri or emailAddress)"
        )),
    }
}

/// One `x-amz-grant-*` header value: `type="value"` items separated by commas.
fn parse_grant_header(
    value: &str,
    permission: Permission,
    users: Option<&Users>,
    out: &mut Vec<Grant>,
) -> S3Result<()> {
    for item in value.split(',') {
        let item = item.trim();
        let Some((kind, v)) = item.split_once('=') else {
            return Err(s3_error!(
                InvalidArgument,
                "Argument format not recognized: {item}"
            ));
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        out.push(Grant {
            grantee: grantee_of(kind.trim(), v, users)?,
            permission,
        });
    }
    Ok(())
}

/// The five grant headers' values, in the order read, write, read-acp, write-acp,
/// full-control.
pub type GrantHeaders<'a> = [Option<&'a str>; 5];

/// The [`GrantHeaders`] of an s3s input that has them (CreateBucket, PutBucketAcl,
/// PutObjectAcl: the same five fields in each, of types with no trait in common).
macro_rules! grant_headers {
    ($input:expr) => {
        [
            $input.grant_read.as_deref(),
            $input.grant_write.as_deref(),
            $input.grant_read_acp.as_deref(),
            $input.grant_write_acp.as_deref(),
            $input.grant_full_control.as_deref(),
        ]
    };
}

const HEADER_PERMISSIONS: [Permission; 5] = [
    Permission::Read,
    Permission::Write,
    Permission::ReadAcp,
    Permission::WriteAcp,
    Permission::FullControl,
];

/// The ACL a request asks for with a canned ACL or grant headers (`None`: neither). Both
/// together are InvalidRequest, as in S3.
pub fn from_request(
    canned: Option<&str>,
    grants: GrantHeaders<'_>,
    owner: &str,
    users: Option<&Users>,
) -> S3Result<Option<Acl>> {
    let any_grant = grants.iter().any(Option::is_some);
    match (canned, any_grant) {
        (Some(_), true) => Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        )),
        (Some(c), false) => canned_bucket(c, owner).map(Some),
        (None, false) => Ok(None),
        (None, true) => {
            let mut out = Vec::new();
            for (value, permission) in grants.iter().zip(HEADER_PERMISSIONS) {
                if let Some(v) = value {
                    parse_grant_header(v, permission, users, &mut out)?;
                }
            }
            bounded(Acl { grants: out }).map(Some)
        }
    }
}

fn bounded(acl: Acl) -> S3Result<Acl> {
    if acl.grants.len() > ACL_GRANTS_MAX {
        return Err(malformed_acl(&format!(
            "at most {ACL_GRANTS_MAX} grants are allowed"
        )));
    }
    Ok(acl)
}

fn malformed_acl(why: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::Custom("MalformedACLError".into()),
        format!("The XML you provided was not well-formed or did not validate: {why}"),
    )
}

/// The ACL of an AccessControlPolicy body. Its Owner must be the bucket's owner.
pub fn from_body(body: &AccessControlPolicy, owner: &str, users: Option<&Users>) -> S3Result<Acl> {
    let Some(owner_id) = body.owner.as_ref().and_then(|o| o.id.as_deref()) else {
        return Err(malformed_acl("the Owner ID is missing"));
    };
    if owner_id != owner {
        return Err(s3_error!(
            AccessDenied,
            "the Owner ID of an ACL must be the bucket owner's"
        ));
    }
    let mut grants = Vec::new();
    for g in body.grants.iter().flatten() {
        let (Some(grantee), Some(permission)) = (&g.grantee, &g.permission) else {
            return Err(malformed_acl("a Grant needs a Grantee and a Permission"));
        };
        let permission = Permission::of_name(permission.as_str())
            .ok_or_else(|| malformed_acl("unknown Permission"))?;
        let grantee = match grantee.type_.as_str() {
            Type::CANONICAL_USER => {
                let id = grantee
                    .id
                    .as_deref()
                    .ok_or_else(|| malformed_acl("a CanonicalUser Grantee needs an ID"))?;
                grantee_of("id", id, users)?
            }
            Type::GROUP => {
                let uri = grantee
                    .uri
                    .as_deref()
                    .ok_or_else(|| malformed_acl("a Group Grantee needs a URI"))?;
                grantee_of("uri", uri, users)?
            }
            Type::AMAZON_CUSTOMER_BY_EMAIL => grantee_of("emailAddress", "", users)?,
            _ => return Err(malformed_acl("unknown Grantee type")),
        };
        grants.push(Grant {
            grantee,
            permission,
        });
    }
    bounded(Acl { grants })
}

/// Whether `canned` (an object's canned ACL) grants nothing beyond the owner: the object's
/// owner is the bucket's.
pub fn canned_object_is_owner_only(canned: &str) -> bool {
    matches!(
        canned,
        "private" | "bucket-owner-read" | "bucket-owner-full-control"
    )
}

/// The bucket ACL permission a policy action needs (module docs); `None`: no bucket grant
/// gives it.
pub fn permission_for(action: &str) -> Option<Permission> {
    Some(match action {
        "s3:ListBucket" | "s3:ListBucketVersions" | "s3:ListBucketMultipartUploads" => {
            Permission::Read
        }
        // Multipart uploads are writes: whoever may write may also abort and list the parts
        // of an upload (in S3 its initiator may; here every upload is the owner's).
        "s3:PutObject"
        | "s3:DeleteObject"
        | "s3:AbortMultipartUpload"
        | "s3:ListMultipartUploadParts" => Permission::Write,
        "s3:GetBucketAcl" => Permission::ReadAcp,
        "s3:PutBucketAcl" => Permission::WriteAcp,
        _ => return None,
    })
}

/// A bucket's ACL and object ownership in force, as last read.
#[derive(Debug, Clone)]
pub struct InForce {
    /// `None`: none beyond the owner, or ACLs disabled by BucketOwnerEnforced.
    pub acl: Option<Arc<Acl>>,
    pub ownership: Ownership,
}

/// The ACLs and ownerships in force as last read, per scope.
pub struct State {
    cache: TtlCache<InForce>,
}

impl Default for State {
    fn default() -> State {
        State {
            cache: TtlCache::new(CACHE_TTL, CACHE_ENTRIES_MAX, CACHE_BYTES_MAX),
        }
    }
}

impl State {
    /// Drops `scope`'s entry (its ACL or ownership changed here).
    pub fn forget(&self, scope: &str) {
        self.cache.forget(scope);
    }
}

pub(crate) fn not_supported() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("AccessControlListNotSupported".into()),
        "The bucket does not allow ACLs (its object ownership is BucketOwnerEnforced)",
    );
    e.set_status_code(hyper::StatusCode::BAD_REQUEST);
    e
}

/// CreateBucket's refusal of an ACL together with BucketOwnerEnforced.
fn acl_with_enforced() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("InvalidBucketAclWithObjectOwnership".into()),
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
    );
    e.set_status_code(hyper::StatusCode::BAD_REQUEST);
    e
}

/// The ACL a CreateBucket asks for (`None`: none beyond the owner), checked before the bucket
/// exists.
pub fn of_create(
    i: &CreateBucketInput,
    owner: &str,
    users: Option<&Users>,
) -> S3Result<Option<Acl>> {
    let canned = i.acl.as_ref().map(s3s::dto::BucketCannedACL::as_str);
    let acl =
        from_request(canned, grant_headers!(i), owner, users)?.filter(|a| !a.owner_only(owner));
    let enforced = i
        .object_ownership
        .as_ref()
        .map(s3s::dto::ObjectOwnership::as_str)
        == Some(s3s::dto::ObjectOwnership::BUCKET_OWNER_ENFORCED);
    if acl.is_some() && enforced {
        return Err(acl_with_enforced());
    }
    Ok(acl)
}

impl Gateway {
    /// `scope`'s object ownership, read now.
    pub(crate) async fn read_ownership(&self, scope: &str) -> S3Result<Ownership> {
        let stored = self
            .config_read(scope, crate::public_access::OWNERSHIP_CONFIG)
            .await?;
        match stored {
            None => Ok(Ownership::Unset),
            Some(v) => {
                crate::public_access::decode_ownership(&v).map_err(|e| s3_error!(e, InternalError))
            }
        }
    }

    /// Whether `scope`'s ownership controls say BucketOwnerEnforced (ACLs disabled).
    async fn acls_disabled(&self, scope: &str) -> S3Result<bool> {
        Ok(self.read_ownership(scope).await? == Ownership::BucketOwnerEnforced)
    }

    /// `scope`'s stored ACL (`None`: private), read now.
    async fn read_acl(&self, scope: &str) -> S3Result<Option<Acl>> {
        self.config_read(scope, ACL_CONFIG)
            .await?
            .map(|v| Acl::decode(&v).map_err(|e| s3_error!(e, InternalError)))
            .transpose()
    }

    /// The ACL and ownership in force for `scope`, through the cache (`State`).
    pub(crate) async fn acl_in_force(&self, scope: &str) -> S3Result<InForce> {
        if let Some(in_force) = self.acls.cache.get(scope) {
            return Ok(in_force);
        }
        let ownership = self.read_ownership(scope).await?;
        let acl = if ownership == Ownership::BucketOwnerEnforced {
            None
        } else {
            self.read_acl(scope).await?.map(Arc::new)
        };
        let ids: usize = acl.as_ref().map_or(0, |a| {
            a.grants
                .iter()
                .map(|g| match &g.grantee {
                    Grantee::User(id) => 16 + id.len(),
                    _ => 16,
                })
                .sum()
        });
        let size = scope.len() + 64 + ids;
        let in_force = InForce { acl, ownership };
        self.acls.cache.put(scope, in_force.clone(), size);
        Ok(in_force)
    }

    /// Whether the ACL of the bucket of `scope` gives the caller (`access_key`, not the
    /// owner; `None`: anonymous) what `action` needs (module docs).
    pub(crate) async fn acl_grants(
        &self,
        scope: &str,
        access_key: Option<&str>,
        action: &str,
    ) -> S3Result<bool> {
        let Some(permission) = permission_for(action) else {
            return Ok(false);
        };
        let Some(acl) = self.acl_in_force(scope).await?.acl else {
            return Ok(false);
        };
        if !acl.allows(access_key, permission, true) {
            // Not even its private grants: public ones decide, unless ignored.
            if !acl.allows(access_key, permission, false) {
                return Ok(false);
            }
            let block = self.public_access_block(scope).await?;
            return Ok(!block.is_some_and(|b| b.ignore_public_acls));
        }
        Ok(true)
    }

    /// AccessControlListNotSupported when `bucket` exists and its ownership controls say
    /// BucketOwnerEnforced: what an object ACL that is refused anyway answers there, as in S3.
    pub(crate) async fn check_acls_enabled(&self, bucket: &str) -> S3Result<()> {
        let Some(record) = self.store.bucket(bucket).await.map_err(s3_err)? else {
            return Ok(());
        };
        if self.acls_disabled(&record.scope(bucket)).await? {
            return Err(not_supported());
        }
        Ok(())
    }

    /// Stores a new bucket's ACL (`of_create`).
    pub(crate) async fn store_created_acl(&self, scope: &str, acl: &Acl) -> S3Result<()> {
        self.config_put(scope, ACL_CONFIG, &acl.encode()).await
    }

    pub(crate) async fn bucket_acl_get(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let acl = if self.acls_disabled(&scope).await? {
            None
        } else {
            self.read_acl(&scope).await?
        };
        let acl = acl.unwrap_or_else(|| Acl::private(&user));
        let (owner, grants) = acl.to_dto(&user);
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(grants),
            owner: Some(owner),
        }))
    }

    /// PutBucketAcl: a canned ACL, grant headers or a body (exactly one of them).
    pub(crate) async fn bucket_acl_put(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let user = user_of(&req)?;
        let i = &req.input;
        let owned = self.owned_bucket(&i.bucket, &user).await?;
        let users = self.policies.users();
        let canned = i.acl.as_ref().map(s3s::dto::BucketCannedACL::as_str);
        let from_headers = from_request(canned, grant_headers!(i), &user, users.as_deref())?;
        let acl = match (from_headers, &i.access_control_policy) {
            (Some(_), Some(_)) => {
                return Err(s3_error!(
                    UnexpectedContent,
                    "This request does not support content with a canned ACL or grant headers"
                ))
            }
            (Some(acl), None) => acl,
            (None, Some(body)) => from_body(body, &user, users.as_deref())?,
            (None, None) => {
                return Err(s3_error!(
                    MissingSecurityHeader,
                    "Your request was missing a required header: x-amz-acl, x-amz-grant-* or \
                     an AccessControlPolicy body"
                ))
            }
        };
        if acl.is_public()
            && self
                .read_block(&owned.scope)
                .await?
                .is_some_and(|b| b.block_public_acls)
        {
            return Err(crate::public_access::blocked_acl());
        }
        let owner_only = acl.owner_only(&user);
        if !owner_only && self.acls_disabled(&owned.scope).await? {
            return Err(not_supported());
        }
        let stored = if owner_only {
            self.config_delete(&owned.scope, ACL_CONFIG).await
        } else {
            self.config_put(&owned.scope, ACL_CONFIG, &acl.encode())
                .await
        };
        self.acls.forget(&owned.scope);
        stored?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::User;

    fn users() -> Users {
        let mut u = Users::default();
        for (name, key) in [
            ("root", "ROOTACCESSKEY0001"),
            ("alice", "ALICEACCESSKEY001"),
        ] {
            u.add(User {
                name: name.into(),
                access_key: key.into(),
                secret_key: "secret-key-0000000000000000".into(),
            })
            .unwrap();
        }
        u
    }

    fn code(r: S3Result<impl std::fmt::Debug>) -> String {
        r.err()
            .map(|e| e.code().as_str().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn record_round_trip_and_refusals() {
        let mut acl = canned_bucket("public-read-write", "ROOTACCESSKEY0001").unwrap();
        acl.grants.push(Grant {
            grantee: Grantee::AuthenticatedUsers,
            permission: Permission::ReadAcp,
        });
        acl.grants.push(Grant {
            grantee: Grantee::User("ALICEACCESSKEY001".into()),
            permission: Permission::WriteAcp,
        });
        let bytes = acl.encode();
        assert_eq!(Acl::decode(&bytes).unwrap(), acl);
        for cut in 0..bytes.len() {
            assert!(Acl::decode(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(Acl::decode(&longer).is_err());
        let mut bad = bytes.to_vec();
        bad[0] = 2;
        assert!(Acl::decode(&bad).is_err());
        bad = bytes.to_vec();
        bad[3] = 9; // the first permission
        assert!(Acl::decode(&bad).is_err());
        assert_eq!(Acl::decode(&[1, 0, 0]).unwrap(), Acl { grants: Vec::new() });
    }

    /// Format 1 as written to disk: a fixture every later version must still open.
    #[test]
    fn format_1_fixture() {
        let stored: &[u8] = &[
            1, 3, 0, // version, 3 grants
            5, 0, 4, 0, b'r', b'o', b'o', b't', // FULL_CONTROL to user "root"
            1, 1, // READ to AllUsers
            4, 2, // WRITE_ACP to AuthenticatedUsers
        ];
        let acl = Acl::decode(stored).unwrap();
        assert_eq!(
            acl.grants,
            [
                Grant {
                    grantee: Grantee::User("root".into()),
                    permission: Permission::FullControl
                },
                Grant {
                    grantee: Grantee::AllUsers,
                    permission: Permission::Read
                },
                Grant {
                    grantee: Grantee::AuthenticatedUsers,
                    permission: Permission::WriteAcp
                },
            ]
        );
        assert_eq!(&acl.encode()[..], stored);
    }

    #[test]
    fn canned_acls_grant_as_s3_does() {
        let read = |c: &str, who: Option<&str>| {
            canned_bucket(c, "ROOTACCESSKEY0001")
                .unwrap()
                .allows(who, Permission::Read, false)
        };
        assert!(read("public-read", None));
        assert!(!read("authenticated-read", None));
        assert!(read("authenticated-read", Some("ALICEACCESSKEY001")));
        assert!(!read("private", Some("ALICEACCESSKEY001")));
        assert!(!read(
            "bucket-owner-full-control",
            Some("ALICEACCESSKEY001")
        ));
        let prw = canned_bucket("public-read-write", "ROOTACCESSKEY0001").unwrap();
        assert!(prw.allows(None, Permission::Write, false));
        assert!(!prw.allows(None, Permission::Write, true));
        assert!(!prw.allows(None, Permission::ReadAcp, false));
        assert_eq!(code(canned_bucket("aws-exec-read", "R")), "NotImplemented");
        assert_eq!(
            code(canned_bucket("log-delivery-write", "R")),
            "NotImplemented"
        );
        assert_eq!(code(canned_bucket("everyone", "R")), "InvalidArgument");
    }

    #[test]
    fn grant_headers() {
        let u = users();
        let both = format!(r#"id="ROOTACCESSKEY0001", uri={AUTHENTICATED_USERS}"#);
        let acl = from_request(
            None,
            [
                Some(r#"uri="http://acs.amazonaws.com/groups/global/AllUsers""#),
                None,
                Some("id=ALICEACCESSKEY001"),
                None,
                Some(both.as_str()),
            ],
            "ROOTACCESSKEY0001",
            Some(&u),
        )
        .unwrap()
        .unwrap();
        assert_eq!(acl.grants.len(), 4);
        assert!(acl.allows(None, Permission::Read, false));
        assert!(!acl.allows(None, Permission::Write, false));
        assert!(acl.allows(Some("ALICEACCESSKEY001"), Permission::ReadAcp, false));
        assert!(acl.allows(Some("ALICEACCESSKEY001"), Permission::WriteAcp, false));
        assert!(!acl.allows(Some("ALICEACCESSKEY001"), Permission::WriteAcp, true));
        let one = |v: &'static str| {
            code(from_request(
                None,
                [Some(v), None, None, None, None],
                "ROOTACCESSKEY0001",
                Some(&u),
            ))
        };
        assert_eq!(one("id=NOBODY"), "InvalidArgument");
        assert_eq!(one("emailAddress=a@b.c"), "NotImplemented");
        assert_eq!(one("uri=http://example.com/group"), "InvalidArgument");
        assert_eq!(one("ALICEACCESSKEY001"), "InvalidArgument");
        assert_eq!(
            code(from_request(
                Some("private"),
                [Some("id=ALICEACCESSKEY001"), None, None, None, None],
                "ROOTACCESSKEY0001",
                Some(&u)
            )),
            "InvalidRequest"
        );
        let many = vec!["id=ALICEACCESSKEY001"; ACL_GRANTS_MAX + 1].join(",");
        assert_eq!(
            code(from_request(
                None,
                [Some(&many), None, None, None, None],
                "ROOTACCESSKEY0001",
                Some(&u)
            )),
            "MalformedACLError"
        );
    }

    #[test]
    fn bodies() {
        let u = users();
        let acl = canned_bucket("authenticated-read", "ROOTACCESSKEY0001").unwrap();
        let (owner, grants) = acl.to_dto("ROOTACCESSKEY0001");
        let mut body = AccessControlPolicy {
            grants: Some(grants),
            owner: Some(owner),
        };
        assert_eq!(
            from_body(&body, "ROOTACCESSKEY0001", Some(&u)).unwrap(),
            acl
        );
        assert_eq!(
            code(from_body(&body, "ALICEACCESSKEY001", Some(&u))),
            "AccessDenied"
        );
        body.grants.as_mut().unwrap()[0].permission = Some(DtoPermission::from_static("ALL"));
        assert_eq!(
            code(from_body(&body, "ROOTACCESSKEY0001", Some(&u))),
            "MalformedACLError"
        );
        body.grants.as_mut().unwrap()[0].permission = None;
        assert_eq!(
            code(from_body(&body, "ROOTACCESSKEY0001", Some(&u))),
            "MalformedACLError"
        );
        body.owner = None;
        assert_eq!(
            code(from_body(&body, "ROOTACCESSKEY0001", Some(&u))),
            "MalformedACLError"
        );
    }

    #[test]
    fn permissions_of_actions() {
        assert_eq!(permission_for("s3:ListBucket"), Some(Permission::Read));
        assert_eq!(permission_for("s3:PutObject"), Some(Permission::Write));
        assert_eq!(
            permission_for("s3:AbortMultipartUpload"),
            Some(Permission::Write)
        );
        assert_eq!(permission_for("s3:DeleteObjectVersion"), None);
        assert_eq!(permission_for("s3:GetObject"), None);
        assert_eq!(permission_for("s3:PutBucketPolicy"), None);
    }
}
