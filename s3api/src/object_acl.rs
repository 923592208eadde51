//! Object ACLs and object ownership: what an object version's access control list grants,
//! who owns the version, how a write or PutObjectAcl asks for them, their record, and the
//! grant the access gate (`authz`) reads from them.
//!
//! **Per version.** Each version has its own owner and ACL, kept in its head and version
//! record (`ObjectHead::acl`, head format 9), written with the version in one record (a PUT,
//! a copy, a completed multipart upload, a POST form) and changed by PutObjectAcl with a
//! compare-and-swap of the records holding it (`Store::set_acl`). A version without one (every
//! version written before, and every version whose ACL is the default) is owned by the bucket
//! owner with the owner's FULL_CONTROL only: exactly what percore did before object ACLs.
//!
//! **Record.** The owner is the head's `owner` (none: the bucket owner); the ACL is the head's
//! `acl`, encoded as a bucket ACL record is (`acl`: format byte 1 ‖ count u16 LE ‖ grants;
//! none: the owner's FULL_CONTROL only). The owner is a field of its own, not part of the ACL,
//! so that listings can show it (the listing entry carries it, format 4) without reading the
//! head. A version owned by the bucket owner with the owner-only ACL stores neither: its head
//! is written in the format it had before object ACLs.
//!
//! **What a grant gives** on an object (S3's mapping; FULL_CONTROL is all three):
//! READ: GetObject, HeadObject (GetObjectVersion with a versionId); READ_ACP: GetObjectAcl;
//! WRITE_ACP: PutObjectAcl. READ also lets a caller copy the version (the source of
//! CopyObject and UploadPartCopy). The object's owner may always read and write its ACL. An
//! object WRITE grant means nothing (S3 documents it as not applicable). Other object
//! operations (tagging, attributes, retention) are not judged by object ACLs: they stay the
//! bucket owner's and the policy's, whoever owns the object. The gate reads a version's
//! ACL only for those operations, only for a caller the bucket's policy does not already
//! allow, and only where it can matter (not with BucketOwnerEnforced; for the bucket owner,
//! only where writers may own objects). An explicit Deny in the bucket policy beats any grant;
//! IgnorePublicAcls makes public grants count for nothing; BlockPublicAcls refuses writes of
//! public ACLs (403). The version the gate judged is the one the handler serves
//! ([`JudgedVersion`]): a version written between the two answers AccessDenied.
//!
//! **Ownership** (`public_access::Ownership`, the bucket's ownership controls):
//! - no controls (percore's default, kept from before): ACLs enabled, the bucket owner owns
//!   every object whoever writes it;
//! - BucketOwnerEnforced: ACLs disabled, the bucket owner owns every object; an ACL other than
//!   an owner-only one is AccessControlListNotSupported;
//! - ObjectWriter: the signer of the write owns the version, with FULL_CONTROL by default; the
//!   bucket owner gets what the ACL grants it (`bucket-owner-read`,
//!   `bucket-owner-full-control`);
//! - BucketOwnerPreferred: the bucket owner owns versions written with
//!   `bucket-owner-full-control`, the writer the others.
//!
//! An anonymous writer (a bucket open to anonymous writes) never owns: the bucket owner does.
//! The owner does not change with PutObjectAcl, nor with a later change of the bucket's
//! ownership controls, as in S3.

use bytes::Bytes;
use s3s::dto::{
    AccessControlPolicy, GetObjectAclInput, GetObjectAclOutput, PutObjectAclInput,
    PutObjectAclOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::acl::{Acl, Grant, Grantee, Permission};
use crate::public_access::Ownership;
use crate::records::{Malformed, ObjectHead};
use crate::s3::{s3_err, user_of, Gateway, Owned};

/// One version's owner and ACL (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectAcl {
    /// The owner's canonical id (its user's id).
    pub owner: String,
    pub acl: Acl,
}

/// What a version's head stores of its owner and ACL (`ObjectHead::owner`,
/// `ObjectHead::acl`): `None` for the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub owner: Option<String>,
    pub acl: Option<Bytes>,
}

impl ObjectAcl {
    /// The default: the bucket owner's, with its FULL_CONTROL only.
    pub fn default_for(bucket_owner: &str) -> ObjectAcl {
        ObjectAcl {
            owner: bucket_owner.to_owned(),
            acl: Acl::private(bucket_owner),
        }
    }

    /// The owner and ACL of `head` in a bucket owned by `bucket_owner` (module docs).
    pub fn of_head(head: &ObjectHead, bucket_owner: &str) -> Result<ObjectAcl, Malformed> {
        let owner = head.owner.as_deref().unwrap_or(bucket_owner);
        Ok(ObjectAcl {
            owner: owner.to_owned(),
            acl: match &head.acl {
                None => Acl::private(owner),
                Some(b) => Acl::decode(b)?,
            },
        })
    }

    /// What a version's head stores (module docs).
    pub fn stored(&self, bucket_owner: &str) -> Stored {
        Stored {
            owner: (self.owner != bucket_owner).then(|| self.owner.clone()),
            acl: (self.acl != Acl::private(&self.owner)).then(|| self.acl.encode()),
        }
    }

    /// Whether it gives `permission` to the caller (`None`: anonymous); `ignore_public`:
    /// public grants count for nothing. The owner may always read and write the ACL.
    pub fn allows(
        &self,
        caller: Option<&str>,
        permission: Permission,
        ignore_public: bool,
    ) -> bool {
        let acp = matches!(permission, Permission::ReadAcp | Permission::WriteAcp);
        (acp && caller == Some(self.owner.as_str()))
            || self.acl.allows(caller, permission, ignore_public)
    }
}

/// The object ACL permission an operation needs from a caller who is not let in otherwise
/// (module docs); `None`: object ACLs play no part in it.
pub fn permission_for(op: &str) -> Option<Permission> {
    Some(match op {
        "GetObject" | "HeadObject" => Permission::Read,
        "GetObjectAcl" => Permission::ReadAcp,
        "PutObjectAcl" => Permission::WriteAcp,
        _ => return None,
    })
}

/// The ACL an object canned ACL stands for, for a version owned by `owner` in a bucket
/// owned by `bucket_owner` (an unknown one: InvalidArgument; the AWS-service ones:
/// NotImplemented, as on buckets).
pub fn canned_object(value: &str, owner: &str, bucket_owner: &str) -> S3Result<Acl> {
    let to_bucket_owner = match value {
        "bucket-owner-read" => Some(Permission::Read),
        "bucket-owner-full-control" => Some(Permission::FullControl),
        other => return crate::acl::canned_bucket(other, owner),
    };
    let mut acl = Acl::private(owner);
    if let (Some(permission), true) = (to_bucket_owner, owner != bucket_owner) {
        acl.grants.push(Grant {
            grantee: Grantee::User(bucket_owner.to_owned()),
            permission,
        });
    }
    Ok(acl)
}

/// Whether an object canned ACL grants nothing beyond what the bucket owner has where it
/// owns every object.
fn owner_only_canned(value: &str) -> bool {
    crate::acl::canned_object_is_owner_only(value)
}

/// What a write or PutObjectAcl asks for: a canned ACL, grant headers (read, write,
/// read-acp, write-acp, full-control), an AccessControlPolicy body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    pub canned: Option<&'a str>,
    pub grants: crate::acl::GrantHeaders<'a>,
    pub body: Option<&'a AccessControlPolicy>,
}

impl Asked<'_> {
    fn any(&self) -> bool {
        self.canned.is_some() || self.grants.iter().any(Option::is_some) || self.body.is_some()
    }

    /// Whether it asks for nothing beyond the default (an owner-only canned ACL or nothing).
    fn owner_only(&self) -> bool {
        self.grants.iter().all(Option::is_none)
            && self.body.is_none()
            && self.canned.is_none_or(owner_only_canned)
    }
}

/// The ACL fields of an s3s write input (PutObject, CopyObject, CreateMultipartUpload: the
/// same fields in each, of types with no trait in common; objects take no WRITE grant).
macro_rules! asked_of_write {
    ($i:expr) => {
        $crate::object_acl::Asked {
            canned: $i.acl.as_ref().map(|c| c.as_str()),
            grants: [
                $i.grant_read.as_deref(),
                None,
                $i.grant_read_acp.as_deref(),
                $i.grant_write_acp.as_deref(),
                $i.grant_full_control.as_deref(),
            ],
            body: None,
        }
    };
}
pub(crate) use asked_of_write;

/// The user a request was signed by (its user's id; `None`: anonymous), whoever the handler
/// acts as (`authz::ActingFor`).
pub(crate) fn signer_of<T>(req: &S3Request<T>) -> Option<String> {
    if let Some(id) = req.extensions.get::<crate::authz::OwnerKey>() {
        return Some(id.0.clone());
    }
    req.credentials.as_ref().map(|c| c.access_key.clone())
}

/// The version of an object the gate judged by its ACL (module docs): the handler serves it
/// or answers AccessDenied.
#[derive(Debug, Clone, Copy)]
pub struct JudgedVersion(pub [u8; 12]);

/// The version the gate judged the request by, if it judged one.
pub(crate) fn judged(extensions: &http::Extensions) -> Option<JudgedVersion> {
    extensions.get::<JudgedVersion>().copied()
}

/// The version of a copy's source the gate judged by its ACL (module docs).
#[derive(Debug, Clone, Copy)]
pub struct JudgedSource(pub [u8; 12]);

/// The source version the gate judged a copy by, if it judged one.
pub(crate) fn judged_source(extensions: &http::Extensions) -> Option<JudgedVersion> {
    extensions.get::<JudgedSource>().map(|s| JudgedVersion(s.0))
}

/// AccessDenied when the gate judged another version than `head` (a write came between).
pub(crate) fn check_judged(judged: Option<JudgedVersion>, head: &ObjectHead) -> S3Result<()> {
    match judged {
        Some(v) if v.0 != head.version_id => Err(s3_error!(
            AccessDenied,
            "Access Denied: the object changed while the request was judged; retry"
        )),
        _ => Ok(()),
    }
}

/// Whether `e` says the version a request names is not there to judge (no key, no such
/// version, a delete marker, a malformed version id).
fn no_such_version(e: &s3s::S3Error) -> bool {
    use s3s::S3ErrorCode::{InvalidArgument, MethodNotAllowed, NoSuchKey, NoSuchVersion};
    matches!(
        e.code(),
        NoSuchKey | NoSuchVersion | MethodNotAllowed | InvalidArgument
    )
}

/// What the gate learns of one object for a request (`Gateway::object_grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectGrant {
    /// Object ACLs cannot change the answer here: judged as before.
    Moot,
    /// The version's ACL gives the caller what it needs.
    Granted([u8; 12]),
    /// It does not (or there is no such version).
    Refused,
}

impl Gateway {
    /// The owner and ACL a new version gets (`ObjectHead::owner`, `ObjectHead::acl`) in the
    /// bucket `owned`, written by `writer` (`None`: anonymous), asking for `asked` (module
    /// docs): refused when the bucket's ownership disables ACLs or its public access block
    /// blocks public ones.
    pub(crate) async fn acl_for_write(
        &self,
        owned: &Owned,
        writer: Option<&str>,
        asked: Asked<'_>,
    ) -> S3Result<Stored> {
        let bucket_owner = owned.record.owner.as_str();
        // The common case pays nothing: the bucket owner writing without an ACL.
        if !asked.any() && writer.is_none_or(|w| w == bucket_owner) {
            return Ok(Stored::default());
        }
        let ownership = self.read_ownership(&owned.scope).await?;
        if ownership == Ownership::BucketOwnerEnforced {
            if !asked.owner_only() {
                return Err(crate::acl::not_supported());
            }
            return Ok(Stored::default());
        }
        let object_owner = match (ownership, writer) {
            (Ownership::ObjectWriter, Some(w)) => w,
            (Ownership::BucketOwnerPreferred, Some(w))
                if asked.canned != Some("bucket-owner-full-control") =>
            {
                w
            }
            _ => bucket_owner,
        };
        let acl = self.asked_acl(&asked, object_owner, bucket_owner)?;
        let acl = acl.unwrap_or_else(|| Acl::private(object_owner));
        self.check_public_acl(&owned.scope, &acl).await?;
        let object = ObjectAcl {
            owner: object_owner.to_owned(),
            acl,
        };
        Ok(object.stored(bucket_owner))
    }

    /// The ACL `asked` stands for on a version owned by `owner` (`None`: nothing asked).
    fn asked_acl(
        &self,
        asked: &Asked<'_>,
        owner: &str,
        bucket_owner: &str,
    ) -> S3Result<Option<Acl>> {
        let users = self.policies.users();
        let from_headers = match asked.canned {
            Some(c) => {
                if asked.grants.iter().any(Option::is_some) {
                    return Err(s3_error!(
                        InvalidRequest,
                        "Specifying both Canned ACLs and Header Grants is not allowed"
                    ));
                }
                Some(canned_object(c, owner, bucket_owner)?)
            }
            None => crate::acl::from_request(None, asked.grants, owner, users.as_deref())?,
        };
        match (from_headers, asked.body) {
            (Some(_), Some(_)) => Err(s3_error!(
                UnexpectedContent,
                "This request does not support content with a canned ACL or grant headers"
            )),
            (Some(acl), None) => Ok(Some(acl)),
            (None, Some(body)) => crate::acl::from_body(body, owner, users.as_deref()).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// AccessDenied for a public `acl` where the bucket `scope` blocks public ACLs.
    async fn check_public_acl(&self, scope: &str, acl: &Acl) -> S3Result<()> {
        if acl.is_public()
            && self
                .read_block(scope)
                .await?
                .is_some_and(|b| b.block_public_acls)
        {
            return Err(crate::public_access::blocked_acl());
        }
        Ok(())
    }

    /// For the gate: what the ACL of `key` (its version `version_id`, else the current one)
    /// in the bucket `bucket` (owned by `bucket_owner`, of `scope`) gives the caller
    /// (`caller`, `None`: anonymous; `owner`: it owns the bucket) of an operation needing
    /// `permission` (module docs).
    pub(crate) async fn object_grant(
        &self,
        (bucket, scope, bucket_owner): (&str, &str, &str),
        (key, version_id): (&str, Option<&str>),
        caller: Option<&str>,
        (permission, owner): (Permission, bool),
    ) -> S3Result<ObjectGrant> {
        let ownership = self.acl_in_force(scope).await?.ownership;
        if ownership == Ownership::BucketOwnerEnforced || (owner && !ownership.writers_own()) {
            return Ok(if owner {
                ObjectGrant::Moot
            } else {
                ObjectGrant::Refused
            });
        }
        let read = self
            .object_for_read(bucket_owner, bucket, key, version_id)
            .await;
        let head = match read {
            Ok((head, _, _)) => head,
            // Nothing to judge: the owner gets the handler's answer, anyone else none.
            Err(e) if no_such_version(&e) => {
                return Ok(if owner {
                    ObjectGrant::Moot
                } else {
                    ObjectGrant::Refused
                });
            }
            Err(e) => return Err(e),
        };
        let object =
            ObjectAcl::of_head(&head, bucket_owner).map_err(|e| s3_error!(e, InternalError))?;
        if object.owner == bucket_owner && owner {
            return Ok(ObjectGrant::Granted(head.version_id));
        }
        if object.allows(caller, permission, true) {
            return Ok(ObjectGrant::Granted(head.version_id));
        }
        if object.allows(caller, permission, false) {
            let ignored = self
                .public_access_block(scope)
                .await?
                .is_some_and(|b| b.ignore_public_acls);
            if !ignored {
                return Ok(ObjectGrant::Granted(head.version_id));
            }
        }
        Ok(ObjectGrant::Refused)
    }

    /// Whether listings of `scope` show each object's own owner: not where the ownership is
    /// BucketOwnerEnforced, under which the bucket owner owns every object (as in S3).
    pub(crate) async fn shows_object_owners(&self, scope: &str) -> S3Result<bool> {
        Ok(self.acl_in_force(scope).await?.ownership != Ownership::BucketOwnerEnforced)
    }

    /// GetObjectAcl: the version's owner and grants (the owner-only ACL of the bucket owner
    /// where ACLs are disabled).
    pub(crate) async fn object_acl_get(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let user = user_of(&req)?;
        let i = &req.input;
        let (head, _, scope) = self
            .object_for_read(&user, &i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        check_judged(judged(&req.extensions), &head)?;
        // The handler acts as the bucket owner (`object_for_read` checked it owns the bucket).
        let object = if self.read_ownership(&scope).await? == Ownership::BucketOwnerEnforced {
            ObjectAcl::default_for(&user)
        } else {
            ObjectAcl::of_head(&head, &user).map_err(|e| s3_error!(e, InternalError))?
        };
        let (owner, grants) = object.acl.to_dto(&object.owner);
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(grants),
            owner: Some(owner),
            request_charged: None,
        }))
    }

    /// PutObjectAcl: a canned ACL, grant headers or a body (exactly one of them) for the
    /// version, whose owner stays (module docs).
    pub(crate) async fn object_acl_put(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let user = user_of(&req)?;
        let i = &req.input;
        let asked = Asked {
            canned: i.acl.as_ref().map(s3s::dto::ObjectCannedACL::as_str),
            grants: [
                i.grant_read.as_deref(),
                i.grant_write.as_deref(),
                i.grant_read_acp.as_deref(),
                i.grant_write_acp.as_deref(),
                i.grant_full_control.as_deref(),
            ],
            body: i.access_control_policy.as_ref(),
        };
        if !asked.any() {
            return Err(s3_error!(
                MissingSecurityHeader,
                "Your request was missing a required header: x-amz-acl, x-amz-grant-* or an \
                 AccessControlPolicy body"
            ));
        }
        let (head, _, scope) = self
            .object_for_read(&user, &i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        check_judged(judged(&req.extensions), &head)?;
        let bucket_owner = user.as_str();
        let ownership = self.read_ownership(&scope).await?;
        let old =
            ObjectAcl::of_head(&head, bucket_owner).map_err(|e| s3_error!(e, InternalError))?;
        if ownership == Ownership::BucketOwnerEnforced {
            let body_owner_only = asked.body.is_none_or(|b| {
                crate::acl::from_body(b, bucket_owner, self.policies.users().as_deref())
                    .is_ok_and(|a| a == Acl::private(bucket_owner))
            });
            let headers_owner_only = Asked {
                body: None,
                ..asked
            }
            .owner_only();
            if !(body_owner_only && headers_owner_only) {
                return Err(crate::acl::not_supported());
            }
            return Ok(S3Response::new(PutObjectAclOutput::default()));
        }
        let acl = self
            .asked_acl(&asked, &old.owner, bucket_owner)?
            .unwrap_or_else(|| Acl::private(&old.owner));
        self.check_public_acl(&scope, &acl).await?;
        let new = ObjectAcl {
            owner: old.owner,
            acl,
        };
        if new.acl.grants.len() > crate::acl::ACL_GRANTS_MAX {
            return Err(s3_error!(InvalidArgument, "too many grants"));
        }
        self.store
            .set_acl(
                (&scope, &i.key, &head.version_id),
                new.stored(bucket_owner).acl,
            )
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "ROOTACCESSKEY0001";
    const ALICE: &str = "ALICEACCESSKEY001";

    fn sample() -> ObjectAcl {
        let mut acl = canned_object("bucket-owner-read", ALICE, ROOT).unwrap();
        acl.grants.push(Grant {
            grantee: Grantee::AllUsers,
            permission: Permission::Read,
        });
        ObjectAcl {
            owner: ALICE.into(),
            acl,
        }
    }

    #[test]
    fn stored_in_the_head_and_read_back() {
        let o = sample();
        let stored = o.stored(ROOT);
        assert_eq!(stored.owner.as_deref(), Some(ALICE));
        let mut head = objects::test_support::head_of_parts(&[1]);
        head.owner = stored.owner;
        head.acl = stored.acl;
        assert_eq!(ObjectAcl::of_head(&head, ROOT).unwrap(), o);
        // A damaged ACL is an error, never a default.
        head.acl = Some(Bytes::from_static(&[1, 1, 0, 9]));
        assert!(ObjectAcl::of_head(&head, ROOT).is_err());
    }

    /// The ACL as written to disk (the bucket ACL's format 1): a fixture every later version
    /// must still open.
    #[test]
    fn format_1_fixture() {
        let stored: &[u8] = &[
            1, 2, 0, // format, 2 grants
            5, 0, 1, 0, b'a', // FULL_CONTROL to user "a"
            1, 1, // READ to AllUsers
        ];
        let mut head = objects::test_support::head_of_parts(&[1]);
        head.owner = Some("a".into());
        head.acl = Some(Bytes::from_static(stored));
        let o = ObjectAcl::of_head(&head, ROOT).unwrap();
        assert_eq!(o.owner, "a");
        assert_eq!(
            o.acl.grants,
            [
                Grant {
                    grantee: Grantee::User("a".into()),
                    permission: Permission::FullControl
                },
                Grant {
                    grantee: Grantee::AllUsers,
                    permission: Permission::Read
                },
            ]
        );
        assert_eq!(o.stored(ROOT).acl.as_deref(), Some(stored));
    }

    #[test]
    fn the_default_stores_nothing() {
        assert_eq!(ObjectAcl::default_for(ROOT).stored(ROOT), Stored::default());
        // A writer's object with the writer's FULL_CONTROL: only its owner is stored.
        let alices = ObjectAcl::default_for(ALICE);
        assert_eq!(
            alices.stored(ROOT),
            Stored {
                owner: Some(ALICE.into()),
                acl: None
            }
        );
        let mut head = objects::test_support::head_of_parts(&[1]);
        assert_eq!(
            ObjectAcl::of_head(&head, ROOT).unwrap(),
            ObjectAcl::default_for(ROOT)
        );
        head.owner = Some(ALICE.into());
        assert_eq!(ObjectAcl::of_head(&head, ROOT).unwrap(), alices);
    }

    #[test]
    fn canned_object_acls_grant_as_s3_does() {
        let o = |c: &str| ObjectAcl {
            owner: ALICE.into(),
            acl: canned_object(c, ALICE, ROOT).unwrap(),
        };
        assert!(!o("private").allows(Some(ROOT), Permission::Read, false));
        assert!(o("bucket-owner-read").allows(Some(ROOT), Permission::Read, false));
        assert!(!o("bucket-owner-read").allows(Some(ROOT), Permission::WriteAcp, false));
        assert!(o("bucket-owner-full-control").allows(Some(ROOT), Permission::WriteAcp, false));
        assert!(o("public-read").allows(None, Permission::Read, false));
        assert!(!o("public-read").allows(None, Permission::Read, true));
        assert!(!o("public-read").allows(None, Permission::ReadAcp, false));
        assert!(o("authenticated-read").allows(Some(ROOT), Permission::Read, false));
        assert!(!o("authenticated-read").allows(None, Permission::Read, false));
        // The owner always reads and writes the ACL, whatever it says.
        let bare = ObjectAcl {
            owner: ALICE.into(),
            acl: Acl { grants: Vec::new() },
        };
        assert!(bare.allows(Some(ALICE), Permission::WriteAcp, false));
        assert!(!bare.allows(Some(ALICE), Permission::Read, false));
        // Owned by the bucket owner, bucket-owner-* add nothing.
        assert_eq!(
            canned_object("bucket-owner-full-control", ROOT, ROOT).unwrap(),
            Acl::private(ROOT)
        );
        let code = |c: &str| {
            canned_object(c, ALICE, ROOT)
                .unwrap_err()
                .code()
                .as_str()
                .to_owned()
        };
        assert_eq!(code("aws-exec-read"), "NotImplemented");
        assert_eq!(code("everyone"), "InvalidArgument");
    }

    /// The handler serves the version the gate judged, or none.
    #[test]
    fn a_version_written_after_the_judgement_is_refused() {
        let mut head = objects::test_support::head_of_parts(&[1]);
        head.version_id = [1; 12];
        assert!(check_judged(None, &head).is_ok());
        assert!(check_judged(Some(JudgedVersion([1; 12])), &head).is_ok());
        let e = check_judged(Some(JudgedVersion([2; 12])), &head).unwrap_err();
        assert_eq!(e.code().as_str(), "AccessDenied");
        let mut ext = http::Extensions::new();
        assert!(judged(&ext).is_none() && judged_source(&ext).is_none());
        ext.insert(JudgedSource([2; 12]));
        assert!(judged(&ext).is_none());
        assert!(check_judged(judged_source(&ext), &head).is_err());
    }

    #[test]
    fn permissions_of_operations() {
        assert_eq!(permission_for("GetObject"), Some(Permission::Read));
        assert_eq!(permission_for("HeadObject"), Some(Permission::Read));
        assert_eq!(permission_for("GetObjectAcl"), Some(Permission::ReadAcp));
        assert_eq!(permission_for("PutObjectAcl"), Some(Permission::WriteAcp));
        assert_eq!(permission_for("PutObject"), None);
        assert_eq!(permission_for("DeleteObject"), None);
    }
}
