//! Refuse what percore does not do. A request that asks for a protection percore does not
//! provide — server-side encryption where it is not built (SSE headers on operations that do
//! not write or read a body, KMS encryption contexts, S3 Bucket Keys), ACL headers where no ACL is set (buckets:
//! `acl`, objects: `object_acl`) or in a query string, an Object Lock header where nothing
//! honours it — answers `NotImplemented` before anything
//! is stored (Object Lock itself is `object_lock`'s). Accepting and ignoring such
//! a request tells the user their data is locked, encrypted or private when it is not: the worst
//! failure a store can have (seen on main before this module: a COMPLIANCE-locked object deleted
//! with a plain DELETE, an SSE-C object read back without its key).
//!
//! Values that ask for exactly what percore already does stay accepted, because common clients
//! send them by default: `x-amz-acl: private` (rclone, s3cmd) anywhere, and object lock
//! explicitly disabled.
//!
//! The check runs in s3s's access hook (`access.rs`), after authentication and before the body
//! is read, on the raw headers of every operation (and on the query string, where presigned URLs
//! may carry the same names); `put_object`'s hook also checks the parsed input. Browser POST
//! uploads, which s3s never sees, call [`refusal`] on their form fields turned into the
//! headers a PUT would carry (`post_upload`). It does not judge bucket configuration bodies: the
//! operations that set encryption or replication configuration are not implemented and answer
//! `NotImplemented` through s3s's default (bucket policies are `bucket_policy`'s, bucket ACLs
//! `acl`'s, object ACLs `object_acl`'s), and `PutBucketVersioning` refuses MFA
//! delete itself (`versioning.rs`). A public ACL this module refuses, in a bucket whose public
//! access block sets BlockPublicAcls, is answered AccessDenied instead (`public_access`, called
//! by `access` on what this module refuses).

use hyper::HeaderMap;
use s3s::dto::PutObjectInput;
use s3s::{s3_error, S3Error};

/// Headers whose mere presence asks for something percore does not do, with what each asks for.
const REFUSED_HEADERS: &[(&str, &str)] = &[
    (
        "x-amz-server-side-encryption-context",
        "server-side encryption with KMS keys",
    ),
    (
        "x-amz-server-side-encryption-bucket-key-enabled",
        "server-side encryption with S3 bucket keys",
    ),
    (
        "x-amz-expected-bucket-owner",
        "checking the bucket owner's account",
    ),
    (
        "x-amz-source-expected-bucket-owner",
        "checking the bucket owner's account",
    ),
    ("x-amz-website-redirect-location", "website redirects"),
    ("x-amz-write-offset-bytes", "appending to objects"),
];

/// The ACL grant headers: honoured as headers on the operations that set an ACL (`acl`,
/// `object_acl`), refused elsewhere and in a query string, where s3s would not read them.
const GRANT_HEADERS: [&str; 5] = [
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
];
const BUCKET_ACL_WRITES: [&str; 2] = ["CreateBucket", "PutBucketAcl"];
/// The object operations that take an ACL (`object_acl`), as headers.
const OBJECT_ACL_WRITES: [&str; 4] = [
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "PutObjectAcl",
];

/// The Object Lock headers of a write (`object_lock`): honoured as headers on the operations
/// that write a version, refused anywhere else and in a query string, where s3s would not
/// read them.
const LOCK_HEADERS: [&str; 3] = [
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
];
const LOCK_WRITES: [&str; 3] = ["PutObject", "CopyObject", "CreateMultipartUpload"];

/// The SSE-C headers (`sse`): honoured as headers on the operations that write or read an
/// object's body (and Complete and ListParts, which check an SSE-C upload's key), refused
/// anywhere else
/// and in a query string. A POST form's SSE-C fields are a PutObject's headers
/// (`post_upload`).
const SSE_C_HEADERS: [&str; 3] = [
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
];
const SSE_C_OPS: [&str; 10] = [
    "PutObject",
    "GetObject",
    "HeadObject",
    "GetObjectAttributes",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "ListParts",
];

/// A copy's source's SSE-C key: honoured as headers of the copies, refused anywhere else and
/// in a query string.
const COPY_SOURCE_SSE_C_HEADERS: [&str; 3] = [
    "x-amz-copy-source-server-side-encryption-customer-algorithm",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key-md5",
];
const COPIES: [&str; 2] = ["CopyObject", "UploadPartCopy"];

/// The SSE-S3 and SSE-KMS headers (`sse`): honoured as headers of the operations that create
/// an object (and as a POST form's fields), refused anywhere else (AWS refuses them on GET
/// and HEAD; an upload's parts are sealed as the upload was created) and in a query string.
const SSE_HEADERS: [&str; 2] = [
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
];
const SSE_WRITES: [&str; 3] = ["PutObject", "CopyObject", "CreateMultipartUpload"];

/// The canned ACLs S3 defines.
const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];

/// Why a request must be refused, or `None` when percore does what it asks. `op` is s3s's
/// operation name (`"CreateBucket"`, `"PutObject"`, …).
pub fn refusal(op: &str, headers: &HeaderMap, query: Option<&str>) -> Option<S3Error> {
    // Most requests name none of the headers below: one pass over their headers says so,
    // where a lookup per name (about thirty) took 4% of a 4 KiB GET's cycles.
    let named = headers.keys().any(|k| checked(k.as_str()));
    if !named && !query.is_some_and(query_names_amz) {
        return None;
    }
    every_refusal(op, headers, query)
}

/// `refusal` without its shortcut.
fn every_refusal(op: &str, headers: &HeaderMap, query: Option<&str>) -> Option<S3Error> {
    for (name, what) in REFUSED_HEADERS {
        if headers.contains_key(*name) || query_has(query, name) {
            return Some(not_implemented(name, what));
        }
    }
    if let Some(e) = sse_c_refusal(op, headers, query) {
        return Some(e);
    }
    if let Some(e) = lock_refusal(op, headers, query) {
        return Some(e);
    }
    if let Some(e) = grant_refusal(op, headers, query) {
        return Some(e);
    }
    if let Some(value) = header_or_query(headers, query, "x-amz-acl") {
        let in_query = !headers.contains_key("x-amz-acl");
        if let Some(e) = acl_refusal(op, &value, in_query) {
            return Some(e);
        }
    }
    if let Some(value) = header_or_query(headers, query, "x-amz-bucket-object-lock-enabled") {
        match value.to_ascii_lowercase().as_str() {
            "false" => {}
            "true"
                if op == "CreateBucket"
                    && headers.contains_key("x-amz-bucket-object-lock-enabled") => {}
            "true" => {
                return Some(s3_error!(
                    NotImplemented,
                    "x-amz-bucket-object-lock-enabled is honoured as a CreateBucket header only"
                ))
            }
            _ => {
                return Some(s3_error!(
                    InvalidArgument,
                    "x-amz-bucket-object-lock-enabled must be true or false"
                ))
            }
        }
    }
    if let Some(value) = header_or_query(headers, query, "x-amz-object-ownership") {
        match value.as_str() {
            "BucketOwnerEnforced" | "BucketOwnerPreferred" | "ObjectWriter" => {}
            _ => {
                return Some(s3_error!(
                    InvalidArgument,
                    "x-amz-object-ownership must be BucketOwnerEnforced, BucketOwnerPreferred or \
                     ObjectWriter"
                ))
            }
        }
    }
    None
}

/// SSE headers outside the operations that honour them, or in a query string.
fn sse_c_refusal(op: &str, headers: &HeaderMap, query: Option<&str>) -> Option<S3Error> {
    for name in SSE_HEADERS {
        if query_has(query, name) || (headers.contains_key(name) && !SSE_WRITES.contains(&op)) {
            return Some(not_implemented(
                name,
                "server-side encryption with S3 or KMS keys here: only as headers of PutObject, \
                 CopyObject and CreateMultipartUpload",
            ));
        }
    }
    for name in SSE_C_HEADERS {
        if query_has(query, name) || (headers.contains_key(name) && !SSE_C_OPS.contains(&op)) {
            return Some(not_implemented(
                name,
                "server-side encryption with customer keys (SSE-C) here: only as headers of \
                 the operations that write or read an object's body",
            ));
        }
    }
    for name in COPY_SOURCE_SSE_C_HEADERS {
        if query_has(query, name) || (headers.contains_key(name) && !COPIES.contains(&op)) {
            return Some(not_implemented(
                name,
                "a copy source's customer key here: only as headers of CopyObject and \
                 UploadPartCopy",
            ));
        }
    }
    None
}

/// Object Lock headers outside the writes that honour them, or in a query string.
fn lock_refusal(op: &str, headers: &HeaderMap, query: Option<&str>) -> Option<S3Error> {
    for name in LOCK_HEADERS {
        if query_has(query, name) {
            return Some(s3_error!(
                NotImplemented,
                "{name} in a query string is not supported: send it as a header"
            ));
        }
        if headers.contains_key(name) && !LOCK_WRITES.contains(&op) {
            return Some(s3_error!(
                NotImplemented,
                "{name} is honoured on PutObject, CopyObject and CreateMultipartUpload only"
            ));
        }
    }
    None
}

/// Grant headers anywhere but on an ACL write (bucket or object), or in a query string;
/// together with a canned ACL, InvalidRequest as in S3.
fn grant_refusal(op: &str, headers: &HeaderMap, query: Option<&str>) -> Option<S3Error> {
    for name in GRANT_HEADERS {
        if query_has(query, name) {
            return Some(s3_error!(
                NotImplemented,
                "{name} in a query string is not supported: send it as a header"
            ));
        }
        if !headers.contains_key(name) {
            continue;
        }
        if headers.contains_key("x-amz-acl") {
            return Some(s3_error!(
                InvalidRequest,
                "Specifying both Canned ACLs and Header Grants is not allowed"
            ));
        }
        if !BUCKET_ACL_WRITES.contains(&op) && !OBJECT_ACL_WRITES.contains(&op) {
            return Some(not_implemented(
                name,
                "ACL grants here: only on CreateBucket, PutBucketAcl, PutObject, CopyObject, \
                 CreateMultipartUpload and PutObjectAcl",
            ));
        }
    }
    None
}

/// A canned ACL on an ACL write (bucket: `acl`; object: `object_acl`) is theirs to judge, as
/// a header: s3s does not read it from a query string, where anything but `private` is
/// refused. On any other operation it sets nothing: the ones that grant nothing beyond the
/// owner (what clients send by default) pass, an unknown one is InvalidArgument, any other
/// NotImplemented.
fn acl_refusal(op: &str, value: &str, in_query: bool) -> Option<S3Error> {
    if BUCKET_ACL_WRITES.contains(&op) || OBJECT_ACL_WRITES.contains(&op) {
        return (in_query && value != "private").then(|| {
            s3_error!(
                NotImplemented,
                "x-amz-acl in a query string is not supported: send it as a header"
            )
        });
    }
    if crate::acl::canned_object_is_owner_only(value) {
        None
    } else if CANNED_ACLS.contains(&value) {
        Some(s3_error!(
            NotImplemented,
            "x-amz-acl is honoured on CreateBucket, PutBucketAcl, PutObject, CopyObject, \
             CreateMultipartUpload and PutObjectAcl only"
        ))
    } else {
        Some(s3_error!(InvalidArgument, "x-amz-acl: unknown canned ACL"))
    }
}

fn not_implemented(header: &str, what: &str) -> S3Error {
    s3_error!(
        NotImplemented,
        "{header}: percore does not provide {what}; the request was refused and nothing was stored"
    )
}

fn header_or_query(headers: &HeaderMap, query: Option<&str>, name: &str) -> Option<String> {
    if let Some(v) = headers.get(name) {
        return Some(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        k.eq_ignore_ascii_case(name).then(|| v.to_owned())
    })
}

/// The headers (and query parameters) `refusal` looks for: every one starts with `x-amz-`.
const SINGLE_NAMES: [&str; 3] = [
    "x-amz-acl",
    "x-amz-bucket-object-lock-enabled",
    "x-amz-object-ownership",
];

/// The lists of names `refusal` looks for, besides `REFUSED_HEADERS`.
const NAME_LISTS: [&[&str]; 6] = [
    &GRANT_HEADERS,
    &LOCK_HEADERS,
    &SSE_C_HEADERS,
    &COPY_SOURCE_SSE_C_HEADERS,
    &SSE_HEADERS,
    &SINGLE_NAMES,
];

/// Whether `refusal` looks at the header `name` (lower case, as `HeaderMap` keeps names).
fn checked(name: &str) -> bool {
    name.starts_with("x-amz-")
        && (REFUSED_HEADERS.iter().any(|(n, _)| *n == name)
            || NAME_LISTS.iter().any(|names| names.contains(&name)))
}

/// Whether a query parameter's name starts with `x-amz-` in any case (a presigned URL's do):
/// only then can `query_has` find one of the names `refusal` looks for.
fn query_names_amz(query: &str) -> bool {
    query.split('&').any(|pair| {
        let k = pair.split_once('=').map_or(pair, |(k, _)| k);
        k.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
    })
}

fn query_has(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let k = pair.split_once('=').map_or(pair, |(k, _)| k);
            k.eq_ignore_ascii_case(name)
        })
    })
}

/// What [`refusal`] finds in headers, found in a parsed PutObject input: a browser POST upload
/// carries these as form fields, not headers.
pub fn put_object_refusal(i: &PutObjectInput) -> Option<S3Error> {
    let asked = [(
        i.website_redirect_location.is_some(),
        "x-amz-website-redirect-location",
    )];
    for (present, header) in asked {
        if present {
            let what = REFUSED_HEADERS
                .iter()
                .find(|(n, _)| *n == header)
                .map_or("this field", |(_, w)| *w);
            return Some(not_implemented(header, what));
        }
    }
    // A form's ACL fields are the handler's (`object_acl`), as a PUT's headers.
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    fn code(op: &str, headers: &[(&'static str, &'static str)]) -> Option<S3ErrorCode> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        refusal(op, &map, None).map(|e| e.code().clone())
    }

    /// The shortcut skips no name: with each name as a header or a query parameter (any
    /// case), under each operation, `refusal` answers as the checks without it do.
    #[test]
    fn the_shortcut_answers_as_every_check() {
        let mut names: Vec<&str> = REFUSED_HEADERS.iter().map(|(n, _)| *n).collect();
        for list in NAME_LISTS {
            names.extend(list);
        }
        let ops = [
            "GetObject",
            "PutObject",
            "CreateBucket",
            "CopyObject",
            "ListObjectsV2",
        ];
        let code = |e: Option<S3Error>| e.map(|e| e.code().clone());
        let mut refused = 0;
        for name in names {
            assert!(checked(name), "{name}");
            for value in ["true", "private", "public-read", "x"] {
                for op in ops {
                    let mut map = HeaderMap::new();
                    map.insert(name, value.parse().unwrap());
                    let shortcut = code(refusal(op, &map, None));
                    assert_eq!(shortcut, code(every_refusal(op, &map, None)), "{op} {name}");
                    refused += usize::from(shortcut.is_some());
                    let query = format!("{}={value}", name.to_ascii_uppercase());
                    let empty = HeaderMap::new();
                    let shortcut = code(refusal(op, &empty, Some(&query)));
                    let every = code(every_refusal(op, &empty, Some(&query)));
                    assert_eq!(shortcut, every, "{op} {query}");
                }
            }
        }
        assert!(refused > 100, "the names asked refusals: {refused}");
        let mut plain = HeaderMap::new();
        plain.insert("x-amz-date", "20261206T000000Z".parse().unwrap());
        plain.insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        assert!(refusal("GetObject", &plain, Some("versionId=1&X-Amz-Expires=60")).is_none());
    }

    #[test]
    fn sse_c_headers_are_honoured_on_body_reads_and_writes_only() {
        let sse = [
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-server-side-encryption-customer-key", "a2V5"),
            ("x-amz-server-side-encryption-customer-key-md5", "bWQ1"),
        ];
        for header in sse {
            for op in SSE_C_OPS {
                assert_eq!(code(op, &[header]), None, "{op} {header:?}");
            }
            for op in [
                "PutObjectTagging",
                "AbortMultipartUpload",
                "DeleteObject",
                "PutObjectAcl",
            ] {
                assert_eq!(
                    code(op, &[header]),
                    Some(S3ErrorCode::NotImplemented),
                    "{op}"
                );
            }
            let query = format!("{}=x", header.0);
            let refused = refusal("GetObject", &HeaderMap::new(), Some(&query));
            assert_eq!(
                refused.map(|e| e.code().clone()),
                Some(S3ErrorCode::NotImplemented)
            );
        }
    }

    #[test]
    fn copy_source_keys_are_honoured_on_copies_only() {
        for name in COPY_SOURCE_SSE_C_HEADERS {
            for op in COPIES {
                assert_eq!(code(op, &[(name, "x")]), None, "{op} {name}");
            }
            for op in ["PutObject", "GetObject", "UploadPart"] {
                assert_eq!(
                    code(op, &[(name, "x")]),
                    Some(S3ErrorCode::NotImplemented),
                    "{op} {name}"
                );
            }
            let refused = refusal("CopyObject", &HeaderMap::new(), Some(&format!("{name}=x")));
            assert!(refused.is_some(), "{name} in a query string");
        }
    }

    #[test]
    fn sse_s3_and_kms_headers_are_honoured_on_object_creation_only() {
        for header in [
            ("x-amz-server-side-encryption", "AES256"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "k"),
        ] {
            for op in SSE_WRITES {
                assert_eq!(code(op, &[header]), None, "{op} {header:?}");
            }
            for op in [
                "UploadPart",
                "UploadPartCopy",
                "CompleteMultipartUpload",
                "GetObject",
                "HeadObject",
            ] {
                assert_eq!(
                    code(op, &[header]),
                    Some(S3ErrorCode::NotImplemented),
                    "{op} {header:?}"
                );
            }
            let query = format!("{}=x", header.0);
            let refused = refusal("PutObject", &HeaderMap::new(), Some(&query));
            assert_eq!(
                refused.map(|e| e.code().clone()),
                Some(S3ErrorCode::NotImplemented)
            );
        }
        for name in [
            "x-amz-server-side-encryption-context",
            "x-amz-server-side-encryption-bucket-key-enabled",
        ] {
            assert_eq!(
                code("PutObject", &[(name, "x")]),
                Some(S3ErrorCode::NotImplemented),
                "{name}"
            );
        }
    }

    #[test]
    fn protections_are_refused() {
        for name in GRANT_HEADERS {
            assert_eq!(
                code("UploadPart", &[(name, "id=x")]),
                Some(S3ErrorCode::NotImplemented),
                "{name}"
            );
            let q = format!("X-Amz-Expires=60&{name}=x");
            let e = refusal("PutBucketAcl", &HeaderMap::new(), Some(&q));
            assert_eq!(
                e.map(|e| e.code().clone()),
                Some(S3ErrorCode::NotImplemented)
            );
        }
        for (name, _) in REFUSED_HEADERS {
            assert_eq!(
                code("PutObject", &[(name, "x")]),
                Some(S3ErrorCode::NotImplemented),
                "{name}"
            );
        }
        for acl in [
            "public-read",
            "public-read-write",
            "authenticated-read",
            "aws-exec-read",
        ] {
            assert_eq!(
                code("UploadPart", &[("x-amz-acl", acl)]),
                Some(S3ErrorCode::NotImplemented)
            );
            let q = format!("X-Amz-Expires=60&x-amz-acl={acl}");
            let e = refusal("PutObject", &HeaderMap::new(), Some(&q));
            assert_eq!(
                e.map(|e| e.code().clone()),
                Some(S3ErrorCode::NotImplemented)
            );
        }
        // Object Lock headers where nothing honours them.
        for name in LOCK_HEADERS {
            assert_eq!(
                code("UploadPart", &[(name, "x")]),
                Some(S3ErrorCode::NotImplemented),
                "{name}"
            );
            let q = format!("X-Amz-Expires=60&{name}=x");
            let e = refusal("PutObject", &HeaderMap::new(), Some(&q));
            assert_eq!(
                e.map(|e| e.code().clone()),
                Some(S3ErrorCode::NotImplemented)
            );
        }
        assert_eq!(
            code("PutObject", &[("x-amz-bucket-object-lock-enabled", "true")]),
            Some(S3ErrorCode::NotImplemented)
        );
        let e = refusal(
            "CreateBucket",
            &HeaderMap::new(),
            Some("X-Amz-Expires=60&x-amz-acl=public-read"),
        );
        assert_eq!(
            e.map(|e| e.code().clone()),
            Some(S3ErrorCode::NotImplemented)
        );
        assert_eq!(
            code("CreateBucket", &[("x-amz-object-ownership", "Writer")]),
            Some(S3ErrorCode::InvalidArgument)
        );
    }

    #[test]
    fn what_percore_does_is_accepted() {
        assert_eq!(code("PutObject", &[("x-amz-acl", "private")]), None);
        assert_eq!(
            code("PutObject", &[("x-amz-acl", "bucket-owner-full-control")]),
            None
        );
        assert_eq!(code("CreateBucket", &[("x-amz-acl", "private")]), None);
        // Bucket ACLs are `acl`'s to judge, object ACLs `object_acl`'s.
        for op in BUCKET_ACL_WRITES.into_iter().chain(OBJECT_ACL_WRITES) {
            assert_eq!(code(op, &[("x-amz-acl", "public-read")]), None);
            for name in GRANT_HEADERS {
                assert_eq!(code(op, &[(name, "id=x")]), None, "{op} {name}");
            }
        }
        assert_eq!(
            code(
                "CreateBucket",
                &[("x-amz-bucket-object-lock-enabled", "false")]
            ),
            None
        );
        assert_eq!(
            code(
                "CreateBucket",
                &[("x-amz-bucket-object-lock-enabled", "True")]
            ),
            None
        );
        for op in LOCK_WRITES {
            for name in LOCK_HEADERS {
                assert_eq!(code(op, &[(name, "x")]), None, "{op} {name}");
            }
        }
        for value in [
            "BucketOwnerEnforced",
            "BucketOwnerPreferred",
            "ObjectWriter",
        ] {
            assert_eq!(
                code("CreateBucket", &[("x-amz-object-ownership", value)]),
                None
            );
        }
        assert_eq!(
            code("GetObject", &[("x-amz-request-payer", "requester")]),
            None
        );
    }

    #[test]
    fn canned_and_grants_together_are_invalid() {
        assert_eq!(
            code(
                "CreateBucket",
                &[("x-amz-acl", "private"), ("x-amz-grant-read", "id=x")]
            ),
            Some(S3ErrorCode::InvalidRequest)
        );
    }

    #[test]
    fn bad_values_are_invalid_arguments() {
        assert_eq!(
            code("UploadPart", &[("x-amz-acl", "everyone")]),
            Some(S3ErrorCode::InvalidArgument)
        );
        assert_eq!(
            code("UploadPart", &[("x-amz-acl", "bucket-owner-read")]),
            None
        );
        assert_eq!(
            code(
                "CreateBucket",
                &[("x-amz-bucket-object-lock-enabled", "yes")]
            ),
            Some(S3ErrorCode::InvalidArgument)
        );
    }

    #[test]
    fn presigned_query_names_count_too() {
        let map = HeaderMap::new();
        let e = refusal(
            "PutObject",
            &map,
            Some("X-Amz-Expires=60&x-amz-server-side-encryption=AES256"),
        );
        assert_eq!(
            e.map(|e| e.code().clone()),
            Some(S3ErrorCode::NotImplemented)
        );
        assert!(refusal(
            "PutObject",
            &map,
            Some("X-Amz-Expires=60&x-amz-acl=private")
        )
        .is_none());
    }
}
