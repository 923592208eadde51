//! S3 policy actions and which one each S3 API operation needs.
//!
//! [`S3_ACTIONS`] is every action name a policy may use (a name or wildcard that matches none
//! of them is refused: a typo like `s3:GetObjects` must not silently grant or deny nothing).
//! [`action_for`] maps an operation (`GetObject`, `ListObjectsV2`…) to the action a request
//! needs and the resource it is checked against, as the S3 documentation lists them. Notes
//! for callers:
//! - with a `versionId`, object operations need their `…Version…` action
//!   (GetObject → `s3:GetObjectVersion`);
//! - CopyObject and UploadPartCopy need `s3:PutObject` on the destination (what
//!   [`action_for`] returns) and also `s3:GetObject` (or `s3:GetObjectVersion`) on the source
//!   object: the caller checks both;
//! - DeleteObjects needs `s3:DeleteObject` (or `s3:DeleteObjectVersion`) on each key: the
//!   caller checks each and reports a refused key as that key's AccessDenied.

/// Every S3 action a policy may name.
pub const S3_ACTIONS: &[&str] = &[
    "s3:AbortMultipartUpload",
    "s3:BypassGovernanceRetention",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:DeleteBucketWebsite",
    "s3:DeleteObject",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectVersionTagging",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketLogging",
    "s3:GetBucketNotification",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetBucketWebsite",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetObject",
    "s3:GetObjectAcl",
    "s3:GetObjectAttributes",
    "s3:GetObjectLegalHold",
    "s3:GetObjectRetention",
    "s3:GetObjectTagging",
    "s3:GetObjectVersion",
    "s3:GetObjectVersionAcl",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectVersionTagging",
    "s3:GetReplicationConfiguration",
    "s3:ListAllMyBuckets",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:ListBucketVersions",
    "s3:ListMultipartUploadParts",
    "s3:PutAccelerateConfiguration",
    "s3:PutBucketAcl",
    "s3:PutBucketCORS",
    "s3:PutBucketLogging",
    "s3:PutBucketNotification",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketRequestPayment",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutBucketWebsite",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectVersionTagging",
    "s3:PutReplicationConfiguration",
    "s3:RestoreObject",
];

/// What a request's resource ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// No bucket: ListBuckets, checked against `arn:aws:s3:::*`.
    Account,
    /// The bucket: `arn:aws:s3:::bucket`.
    Bucket,
    /// The object: `arn:aws:s3:::bucket/key`.
    Object,
}

/// The action an operation needs and the resource it is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredAction {
    pub action: &'static str,
    pub resource: ResourceKind,
}

impl RequiredAction {
    /// The resource ARN of a request on `bucket` and `key` (ignored where the kind has none).
    pub fn resource_arn(&self, bucket: &str, key: &str) -> String {
        match self.resource {
            ResourceKind::Account => format!("{}*", crate::S3_ARN_PREFIX),
            ResourceKind::Bucket => bucket_arn(bucket),
            ResourceKind::Object => object_arn(bucket, key),
        }
    }
}

/// `arn:aws:s3:::bucket`.
pub fn bucket_arn(bucket: &str) -> String {
    format!("{}{bucket}", crate::S3_ARN_PREFIX)
}

/// `arn:aws:s3:::bucket/key` (the key as is: S3 ARNs do not escape keys).
pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("{}{bucket}/{key}", crate::S3_ARN_PREFIX)
}

/// (operation, action, action with a versionId, resource).
const OPERATIONS: &[(&str, &str, &str, ResourceKind)] = {
    use ResourceKind::{Account, Bucket, Object};
    &[
        ("ListBuckets", "s3:ListAllMyBuckets", "", Account),
        // Objects.
        ("GetObject", "s3:GetObject", "s3:GetObjectVersion", Object),
        ("HeadObject", "s3:GetObject", "s3:GetObjectVersion", Object),
        (
            "GetObjectAttributes",
            "s3:GetObjectAttributes",
            "s3:GetObjectVersionAttributes",
            Object,
        ),
        ("PutObject", "s3:PutObject", "", Object),
        ("CopyObject", "s3:PutObject", "", Object),
        ("CreateMultipartUpload", "s3:PutObject", "", Object),
        ("UploadPart", "s3:PutObject", "", Object),
        ("UploadPartCopy", "s3:PutObject", "", Object),
        ("CompleteMultipartUpload", "s3:PutObject", "", Object),
        (
            "AbortMultipartUpload",
            "s3:AbortMultipartUpload",
            "",
            Object,
        ),
        ("ListParts", "s3:ListMultipartUploadParts", "", Object),
        (
            "DeleteObject",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            Object,
        ),
        (
            "DeleteObjects",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            Object,
        ),
        (
            "GetObjectTagging",
            "s3:GetObjectTagging",
            "s3:GetObjectVersionTagging",
            Object,
        ),
        (
            "PutObjectTagging",
            "s3:PutObjectTagging",
            "s3:PutObjectVersionTagging",
            Object,
        ),
        (
            "DeleteObjectTagging",
            "s3:DeleteObjectTagging",
            "s3:DeleteObjectVersionTagging",
            Object,
        ),
        (
            "GetObjectAcl",
            "s3:GetObjectAcl",
            "s3:GetObjectVersionAcl",
            Object,
        ),
        (
            "PutObjectAcl",
            "s3:PutObjectAcl",
            "s3:PutObjectVersionAcl",
            Object,
        ),
        ("GetObjectRetention", "s3:GetObjectRetention", "", Object),
        ("PutObjectRetention", "s3:PutObjectRetention", "", Object),
        ("GetObjectLegalHold", "s3:GetObjectLegalHold", "", Object),
        ("PutObjectLegalHold", "s3:PutObjectLegalHold", "", Object),
        ("RestoreObject", "s3:RestoreObject", "", Object),
        ("SelectObjectContent", "s3:GetObject", "", Object),
        // Buckets.
        ("ListObjects", "s3:ListBucket", "", Bucket),
        ("ListObjectsV2", "s3:ListBucket", "", Bucket),
        ("HeadBucket", "s3:ListBucket", "", Bucket),
        ("ListObjectVersions", "s3:ListBucketVersions", "", Bucket),
        (
            "ListMultipartUploads",
            "s3:ListBucketMultipartUploads",
            "",
            Bucket,
        ),
        ("CreateBucket", "s3:CreateBucket", "", Bucket),
        ("DeleteBucket", "s3:DeleteBucket", "", Bucket),
        ("GetBucketLocation", "s3:GetBucketLocation", "", Bucket),
        ("GetBucketPolicy", "s3:GetBucketPolicy", "", Bucket),
        ("PutBucketPolicy", "s3:PutBucketPolicy", "", Bucket),
        ("DeleteBucketPolicy", "s3:DeleteBucketPolicy", "", Bucket),
        (
            "GetBucketPolicyStatus",
            "s3:GetBucketPolicyStatus",
            "",
            Bucket,
        ),
        ("GetBucketAcl", "s3:GetBucketAcl", "", Bucket),
        ("PutBucketAcl", "s3:PutBucketAcl", "", Bucket),
        ("GetBucketVersioning", "s3:GetBucketVersioning", "", Bucket),
        ("PutBucketVersioning", "s3:PutBucketVersioning", "", Bucket),
        ("GetBucketTagging", "s3:GetBucketTagging", "", Bucket),
        ("PutBucketTagging", "s3:PutBucketTagging", "", Bucket),
        ("DeleteBucketTagging", "s3:PutBucketTagging", "", Bucket),
        ("GetBucketCors", "s3:GetBucketCORS", "", Bucket),
        ("PutBucketCors", "s3:PutBucketCORS", "", Bucket),
        ("DeleteBucketCors", "s3:PutBucketCORS", "", Bucket),
        (
            "GetBucketLifecycleConfiguration",
            "s3:GetLifecycleConfiguration",
            "",
            Bucket,
        ),
        (
            "PutBucketLifecycleConfiguration",
            "s3:PutLifecycleConfiguration",
            "",
            Bucket,
        ),
        (
            "DeleteBucketLifecycle",
            "s3:PutLifecycleConfiguration",
            "",
            Bucket,
        ),
        (
            "GetBucketEncryption",
            "s3:GetEncryptionConfiguration",
            "",
            Bucket,
        ),
        (
            "PutBucketEncryption",
            "s3:PutEncryptionConfiguration",
            "",
            Bucket,
        ),
        (
            "DeleteBucketEncryption",
            "s3:PutEncryptionConfiguration",
            "",
            Bucket,
        ),
        (
            "GetObjectLockConfiguration",
            "s3:GetBucketObjectLockConfiguration",
            "",
            Bucket,
        ),
        (
            "PutObjectLockConfiguration",
            "s3:PutBucketObjectLockConfiguration",
            "",
            Bucket,
        ),
        ("GetBucketWebsite", "s3:GetBucketWebsite", "", Bucket),
        ("PutBucketWebsite", "s3:PutBucketWebsite", "", Bucket),
        ("DeleteBucketWebsite", "s3:DeleteBucketWebsite", "", Bucket),
        (
            "GetBucketNotificationConfiguration",
            "s3:GetBucketNotification",
            "",
            Bucket,
        ),
        (
            "PutBucketNotificationConfiguration",
            "s3:PutBucketNotification",
            "",
            Bucket,
        ),
        ("GetBucketLogging", "s3:GetBucketLogging", "", Bucket),
        ("PutBucketLogging", "s3:PutBucketLogging", "", Bucket),
        (
            "GetBucketReplication",
            "s3:GetReplicationConfiguration",
            "",
            Bucket,
        ),
        (
            "PutBucketReplication",
            "s3:PutReplicationConfiguration",
            "",
            Bucket,
        ),
        (
            "DeleteBucketReplication",
            "s3:PutReplicationConfiguration",
            "",
            Bucket,
        ),
        (
            "GetBucketOwnershipControls",
            "s3:GetBucketOwnershipControls",
            "",
            Bucket,
        ),
        (
            "PutBucketOwnershipControls",
            "s3:PutBucketOwnershipControls",
            "",
            Bucket,
        ),
        (
            "DeleteBucketOwnershipControls",
            "s3:PutBucketOwnershipControls",
            "",
            Bucket,
        ),
        (
            "GetPublicAccessBlock",
            "s3:GetBucketPublicAccessBlock",
            "",
            Bucket,
        ),
        (
            "PutPublicAccessBlock",
            "s3:PutBucketPublicAccessBlock",
            "",
            Bucket,
        ),
        (
            "DeletePublicAccessBlock",
            "s3:PutBucketPublicAccessBlock",
            "",
            Bucket,
        ),
        (
            "GetBucketAccelerateConfiguration",
            "s3:GetAccelerateConfiguration",
            "",
            Bucket,
        ),
        (
            "PutBucketAccelerateConfiguration",
            "s3:PutAccelerateConfiguration",
            "",
            Bucket,
        ),
        (
            "GetBucketRequestPayment",
            "s3:GetBucketRequestPayment",
            "",
            Bucket,
        ),
        (
            "PutBucketRequestPayment",
            "s3:PutBucketRequestPayment",
            "",
            Bucket,
        ),
    ]
};

/// The action the S3 operation `operation` (its API name, as s3s names it: `GetObject`,
/// `ListObjectsV2`) needs, `with_version_id` when the request names a version; `None` for an
/// operation percore has no action for (the caller refuses it).
pub fn action_for(operation: &str, with_version_id: bool) -> Option<RequiredAction> {
    let &(_, action, versioned, resource) = OPERATIONS.iter().find(|(op, ..)| *op == operation)?;
    let action = if with_version_id && !versioned.is_empty() {
        versioned
    } else {
        action
    };
    Some(RequiredAction { action, resource })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_action_is_known_and_the_list_is_sorted_and_distinct() {
        for (op, action, versioned, _) in OPERATIONS {
            assert!(S3_ACTIONS.contains(action), "{op}: {action}");
            assert!(
                versioned.is_empty() || S3_ACTIONS.contains(versioned),
                "{op}"
            );
        }
        assert!(S3_ACTIONS.windows(2).all(|w| w[0] < w[1]));
        for (i, (op, ..)) in OPERATIONS.iter().enumerate() {
            assert!(OPERATIONS[..i].iter().all(|(o, ..)| o != op), "{op} twice");
        }
    }

    #[test]
    fn the_documented_mappings() {
        let cases = [
            ("GetObject", false, "s3:GetObject", ResourceKind::Object),
            (
                "GetObject",
                true,
                "s3:GetObjectVersion",
                ResourceKind::Object,
            ),
            ("HeadObject", false, "s3:GetObject", ResourceKind::Object),
            (
                "ListObjectsV2",
                false,
                "s3:ListBucket",
                ResourceKind::Bucket,
            ),
            (
                "ListObjectVersions",
                false,
                "s3:ListBucketVersions",
                ResourceKind::Bucket,
            ),
            ("UploadPart", false, "s3:PutObject", ResourceKind::Object),
            ("CopyObject", false, "s3:PutObject", ResourceKind::Object),
            (
                "DeleteObjects",
                true,
                "s3:DeleteObjectVersion",
                ResourceKind::Object,
            ),
            (
                "ListParts",
                false,
                "s3:ListMultipartUploadParts",
                ResourceKind::Object,
            ),
            (
                "PutBucketPolicy",
                false,
                "s3:PutBucketPolicy",
                ResourceKind::Bucket,
            ),
            (
                "PutObjectTagging",
                false,
                "s3:PutObjectTagging",
                ResourceKind::Object,
            ),
            (
                "DeleteBucketTagging",
                false,
                "s3:PutBucketTagging",
                ResourceKind::Bucket,
            ),
            (
                "ListBuckets",
                false,
                "s3:ListAllMyBuckets",
                ResourceKind::Account,
            ),
            // A versionId on an operation without a version action changes nothing.
            ("PutObject", true, "s3:PutObject", ResourceKind::Object),
        ];
        for (op, v, action, resource) in cases {
            assert_eq!(
                action_for(op, v),
                Some(RequiredAction { action, resource }),
                "{op}"
            );
        }
        assert_eq!(action_for("getobject", false), None);
        assert_eq!(action_for("Frobnicate", false), None);
        let get = action_for("GetObject", false).unwrap();
        assert_eq!(get.resource_arn("b", "a/b c"), "arn:aws:s3:::b/a/b c");
        let list = action_for("ListObjects", false).unwrap();
        assert_eq!(list.resource_arn("b", "ignored"), "arn:aws:s3:::b");
        let all = action_for("ListBuckets", false).unwrap();
        assert_eq!(all.resource_arn("", ""), "arn:aws:s3:::*");
    }
}
