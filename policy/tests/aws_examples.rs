//! Table-driven evaluation of the S3 user guide's bucket-policy examples and IAM's S3
//! identity-policy examples (rewritten here for the bucket `examplebucket` and percore's
//! users), each with requests that should and should not pass; then documents that must be
//! refused, each with the words its error must say.

use policy::{authorize, Decision, Policy, RequestContext};

use Decision::{Allow, ExplicitDeny, ImplicitDeny};

const BUCKET: &str = "examplebucket";
const NOW: i64 = 1_796_349_791; // 2026-12-04T02:03:11Z

fn obj(key: &str) -> String {
    format!("arn:aws:s3:::{BUCKET}/{key}")
}

fn bucket() -> String {
    format!("arn:aws:s3:::{BUCKET}")
}

/// A request as the gateway would build it: over TLS, from 192.0.2.10, at NOW.
fn req(user: Option<&str>, action: &str, resource: &str) -> RequestContext {
    RequestContext::new(user, action, resource)
        .with_secure_transport(true)
        .with_source_ip("192.0.2.10".parse().unwrap())
        .with_current_time(NOW)
}

fn get(user: Option<&str>, key: &str) -> RequestContext {
    req(user, "s3:GetObject", &obj(key))
}

fn list(user: Option<&str>, prefix: Option<&str>) -> RequestContext {
    let r = req(user, "s3:ListBucket", &bucket());
    match prefix {
        Some(p) => r.with_prefix(p),
        None => r,
    }
}

struct Example {
    name: &'static str,
    /// A bucket policy of BUCKET, or an identity policy.
    bucket_policy: bool,
    public: bool,
    document: &'static str,
    requests: Vec<(&'static str, RequestContext, Decision)>,
}

fn examples() -> Vec<Example> {
    vec![
        Example {
            name: "read-only access for anonymous users",
            bucket_policy: true,
            public: true,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                    "Resource": "arn:aws:s3:::examplebucket/*"
                }]
            }"#,
            requests: vec![
                ("anonymous get", get(None, "photos/cat.jpg"), Allow),
                ("user get", get(Some("alice"), "a"), Allow),
                ("empty key path", get(None, ""), Allow),
                (
                    "anonymous put",
                    req(None, "s3:PutObject", &obj("x")),
                    ImplicitDeny,
                ),
                ("anonymous list", list(None, None), ImplicitDeny),
                (
                    "another bucket",
                    req(None, "s3:GetObject", "arn:aws:s3:::otherbucket/x"),
                    ImplicitDeny,
                ),
                (
                    "a bucket whose name extends this one",
                    req(None, "s3:GetObject", "arn:aws:s3:::examplebucket2/x"),
                    ImplicitDeny,
                ),
            ],
        },
        Example {
            name: "access only from given IPv4 and IPv6 ranges",
            bucket_policy: true,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Id": "SourceIP",
                "Statement": [
                    {
                        "Sid": "AllowTeam",
                        "Effect": "Allow",
                        "Principal": {"AWS": ["arn:aws:iam::percore:user/alice", "bob"]},
                        "Action": "s3:*",
                        "Resource": ["arn:aws:s3:::examplebucket", "arn:aws:s3:::examplebucket/*"]
                    },
                    {
                        "Sid": "DenyOutside",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": ["arn:aws:s3:::examplebucket", "arn:aws:s3:::examplebucket/*"],
                        "Condition": {
                            "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:DB8:1234:5678::/64"]}
                        }
                    }
                ]
            }"#,
            requests: vec![
                ("inside v4", get(Some("alice"), "k"), Allow),
                ("bare name principal", get(Some("bob"), "k"), Allow),
                ("not listed", get(Some("carol"), "k"), ImplicitDeny),
                (
                    "outside v4",
                    get(Some("alice"), "k").with_source_ip("203.0.113.9".parse().unwrap()),
                    ExplicitDeny,
                ),
                (
                    "inside v6",
                    get(Some("alice"), "k")
                        .with_source_ip("2001:db8:1234:5678::42".parse().unwrap()),
                    Allow,
                ),
                (
                    "outside v6",
                    get(Some("alice"), "k")
                        .with_source_ip("2001:db8:1234:5679::42".parse().unwrap()),
                    ExplicitDeny,
                ),
                (
                    "no source address at all",
                    RequestContext::new(Some("alice"), "s3:GetObject", obj("k")),
                    ExplicitDeny,
                ),
                ("list inside", list(Some("bob"), None), Allow),
            ],
        },
        Example {
            name: "deny requests that are not HTTPS",
            bucket_policy: true,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "RestrictToTLSRequestsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::examplebucket", "arn:aws:s3:::examplebucket/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}
                }]
            }"#,
            requests: vec![
                ("https", get(Some("alice"), "k"), ImplicitDeny),
                (
                    "http",
                    get(Some("alice"), "k").with_secure_transport(false),
                    ExplicitDeny,
                ),
                (
                    "http anonymous list",
                    list(None, None).with_secure_transport(false),
                    ExplicitDeny,
                ),
            ],
        },
        Example {
            name: "home folders per user with ${aws:username} (identity policy)",
            bucket_policy: false,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ListTopAndOwnFolder",
                        "Effect": "Allow",
                        "Action": "s3:ListBucket",
                        "Resource": "arn:aws:s3:::examplebucket",
                        "Condition": {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/*"]}}
                    },
                    {
                        "Sid": "OwnFolderObjects",
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        "Resource": "arn:aws:s3:::examplebucket/home/${aws:username}/*"
                    }
                ]
            }"#,
            requests: vec![
                (
                    "own object",
                    get(Some("alice"), "home/alice/notes.txt"),
                    Allow,
                ),
                (
                    "own put",
                    req(Some("alice"), "s3:PutObject", &obj("home/alice/a/b")),
                    Allow,
                ),
                (
                    "other's object",
                    get(Some("alice"), "home/bob/notes.txt"),
                    ImplicitDeny,
                ),
                (
                    "folder name prefix",
                    get(Some("alice"), "home/alicex/n"),
                    ImplicitDeny,
                ),
                ("list root", list(Some("alice"), Some("")), Allow),
                ("list home", list(Some("alice"), Some("home/")), Allow),
                ("list own", list(Some("alice"), Some("home/alice/")), Allow),
                (
                    "list other's",
                    list(Some("alice"), Some("home/bob/")),
                    ImplicitDeny,
                ),
                (
                    "list without prefix",
                    list(Some("alice"), None),
                    ImplicitDeny,
                ),
                (
                    "case matters in keys",
                    get(Some("alice"), "Home/alice/notes.txt"),
                    ImplicitDeny,
                ),
            ],
        },
        Example {
            name: "read objects only with an existing tag, tag writes only with allowed keys",
            bucket_policy: true,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "alice"},
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::examplebucket/*",
                        "Condition": {"StringEquals": {"s3:ExistingObjectTag/environment": "production"}}
                    },
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "alice"},
                        "Action": "s3:PutObjectTagging",
                        "Resource": "arn:aws:s3:::examplebucket/*",
                        "Condition": {
                            "ForAllValues:StringLike": {"s3:RequestObjectTagKeys": ["Owner", "Creation*"]},
                            "ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": "Owner"}
                        }
                    }
                ]
            }"#,
            requests: vec![
                (
                    "tagged production",
                    get(Some("alice"), "k").with_existing_object_tag("environment", "production"),
                    Allow,
                ),
                (
                    "tagged staging",
                    get(Some("alice"), "k").with_existing_object_tag("environment", "staging"),
                    ImplicitDeny,
                ),
                (
                    "tag key case matters",
                    get(Some("alice"), "k").with_existing_object_tag("Environment", "production"),
                    ImplicitDeny,
                ),
                ("untagged", get(Some("alice"), "k"), ImplicitDeny),
                (
                    "allowed tag keys",
                    req(Some("alice"), "s3:PutObjectTagging", &obj("k"))
                        .with_request_object_tag("Owner", "alice")
                        .with_request_object_tag("CreationDate", "2026"),
                    Allow,
                ),
                (
                    "a key outside the set",
                    req(Some("alice"), "s3:PutObjectTagging", &obj("k"))
                        .with_request_object_tag("Owner", "alice")
                        .with_request_object_tag("Cost", "9"),
                    ImplicitDeny,
                ),
                (
                    "the required key missing",
                    req(Some("alice"), "s3:PutObjectTagging", &obj("k"))
                        .with_request_object_tag("CreationDate", "2026"),
                    ImplicitDeny,
                ),
                (
                    "no tags at all: ForAllValues holds, ForAnyValue does not",
                    req(Some("alice"), "s3:PutObjectTagging", &obj("k")),
                    ImplicitDeny,
                ),
            ],
        },
        Example {
            name: "listing restricted to a prefix and a page size",
            bucket_policy: true,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "AllowProjects",
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::percore:user/dave"},
                        "Action": "s3:ListBucket",
                        "Resource": "arn:aws:s3:::examplebucket",
                        "Condition": {
                            "StringEquals": {"s3:prefix": "projects", "s3:delimiter": "/"},
                            "NumericLessThanEquals": {"s3:max-keys": "100"}
                        }
                    },
                    {
                        "Sid": "DenyOtherPrefixes",
                        "Effect": "Deny",
                        "Principal": {"AWS": "arn:aws:iam::percore:user/dave"},
                        "Action": "s3:ListBucket",
                        "Resource": "arn:aws:s3:::examplebucket",
                        "Condition": {"StringNotEquals": {"s3:prefix": "projects"}}
                    }
                ]
            }"#,
            requests: vec![
                (
                    "projects, small page",
                    list(Some("dave"), Some("projects"))
                        .with_delimiter("/")
                        .with_max_keys(100),
                    Allow,
                ),
                (
                    "projects, large page",
                    list(Some("dave"), Some("projects"))
                        .with_delimiter("/")
                        .with_max_keys(1000),
                    ImplicitDeny,
                ),
                (
                    "projects, no delimiter",
                    list(Some("dave"), Some("projects")).with_max_keys(10),
                    ImplicitDeny,
                ),
                (
                    "other prefix",
                    list(Some("dave"), Some("private")),
                    ExplicitDeny,
                ),
                (
                    "no prefix: StringNotEquals holds",
                    list(Some("dave"), None),
                    ExplicitDeny,
                ),
                (
                    "another user",
                    list(Some("erin"), Some("private")),
                    ImplicitDeny,
                ),
            ],
        },
        Example {
            name: "deny everyone but one user (NotPrincipal)",
            bucket_policy: true,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Deny",
                    "NotPrincipal": {"AWS": ["arn:aws:iam::percore:user/alice"]},
                    "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::examplebucket", "arn:aws:s3:::examplebucket/*"]
                }]
            }"#,
            requests: vec![
                ("alice", get(Some("alice"), "k"), ImplicitDeny),
                ("bob", get(Some("bob"), "k"), ExplicitDeny),
                ("anonymous", get(None, "k"), ExplicitDeny),
            ],
        },
        Example {
            name: "uploads must grant the bucket owner full control",
            bucket_policy: true,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"AWS": "bob"},
                    "Action": "s3:PutObject",
                    "Resource": "arn:aws:s3:::examplebucket/*",
                    "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}
                }]
            }"#,
            requests: vec![
                (
                    "with the ACL",
                    req(Some("bob"), "s3:PutObject", &obj("k"))
                        .with_acl("bucket-owner-full-control"),
                    Allow,
                ),
                (
                    "another ACL",
                    req(Some("bob"), "s3:PutObject", &obj("k")).with_acl("public-read"),
                    ImplicitDeny,
                ),
                (
                    "no ACL",
                    req(Some("bob"), "s3:PutObject", &obj("k")),
                    ImplicitDeny,
                ),
            ],
        },
        Example {
            name: "access within a time window",
            bucket_policy: true,
            public: true,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::examplebucket/*",
                    "Condition": {
                        "DateGreaterThan": {"aws:CurrentTime": "2026-12-01T00:00:00Z"},
                        "DateLessThan": {"aws:CurrentTime": "2026-12-31T23:59:59Z"}
                    }
                }]
            }"#,
            requests: vec![
                ("now", get(None, "k"), Allow),
                (
                    "before",
                    get(None, "k").with_current_time(1_700_000_000),
                    ImplicitDeny,
                ),
                (
                    "after",
                    get(None, "k").with_current_time(1_900_000_000),
                    ImplicitDeny,
                ),
                (
                    "no time: refused",
                    RequestContext::new(None, "s3:GetObject", obj("k")),
                    ImplicitDeny,
                ),
            ],
        },
        Example {
            name: "only one version of an object",
            bucket_policy: true,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "bob"},
                        "Action": "s3:GetObjectVersion",
                        "Resource": "arn:aws:s3:::examplebucket/report.pdf"
                    },
                    {
                        "Effect": "Deny",
                        "Principal": {"AWS": "bob"},
                        "Action": "s3:GetObjectVersion",
                        "Resource": "arn:aws:s3:::examplebucket/report.pdf",
                        "Condition": {"StringNotEquals": {"s3:VersionId": "AaaHbAQitwiL_h47_44lRO2DDfLlBO5e"}}
                    }
                ]
            }"#,
            requests: vec![
                (
                    "that version",
                    req(Some("bob"), "s3:GetObjectVersion", &obj("report.pdf"))
                        .with_version_id("AaaHbAQitwiL_h47_44lRO2DDfLlBO5e"),
                    Allow,
                ),
                (
                    "another version",
                    req(Some("bob"), "s3:GetObjectVersion", &obj("report.pdf"))
                        .with_version_id("x"),
                    ExplicitDeny,
                ),
                (
                    "another object",
                    req(Some("bob"), "s3:GetObjectVersion", &obj("r")),
                    ImplicitDeny,
                ),
            ],
        },
        Example {
            name: "deny everything but reads (NotAction), action names case-insensitive",
            bucket_policy: true,
            public: true,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": ["S3:getobject", "s3:List*"],
                        "Resource": ["arn:aws:s3:::examplebucket", "arn:aws:s3:::examplebucket/public/*"]
                    },
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "NotAction": ["s3:Get*", "s3:List*"],
                        "Resource": ["arn:aws:s3:::examplebucket", "arn:aws:s3:::examplebucket/*"]
                    }
                ]
            }"#,
            requests: vec![
                ("get", get(None, "public/a"), Allow),
                ("get outside public/", get(None, "private/a"), ImplicitDeny),
                ("list", list(None, None), Allow),
                (
                    "versions",
                    req(None, "s3:ListBucketVersions", &bucket()),
                    Allow,
                ),
                (
                    "put",
                    req(Some("alice"), "s3:PutObject", &obj("public/a")),
                    ExplicitDeny,
                ),
                (
                    "delete",
                    req(None, "s3:DeleteObject", &obj("x")),
                    ExplicitDeny,
                ),
            ],
        },
        Example {
            name: "everything but one bucket (NotResource, identity policy)",
            bucket_policy: false,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": "s3:*",
                    "NotResource": ["arn:aws:s3:::secret", "arn:aws:s3:::secret/*"]
                }]
            }"#,
            requests: vec![
                ("other bucket", get(Some("alice"), "k"), Allow),
                (
                    "the secret bucket",
                    req(Some("alice"), "s3:GetObject", "arn:aws:s3:::secret/k"),
                    ImplicitDeny,
                ),
                (
                    "list all buckets",
                    req(Some("alice"), "s3:ListAllMyBuckets", "arn:aws:s3:::*"),
                    Allow,
                ),
            ],
        },
        Example {
            name: "SigV4 only, from a version-2008 policy with ? wildcards",
            bucket_policy: true,
            public: false,
            document: r#"{
                "Version": "2008-10-17",
                "Statement": {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": "arn:aws:s3:::examplebucket/log-????.txt",
                    "Condition": {"StringNotEquals": {"s3:signatureversion": "AWS4-HMAC-SHA256"}}
                }
            }"#,
            requests: vec![
                (
                    "SigV4",
                    get(Some("a"), "log-2026.txt").with_signature_version("AWS4-HMAC-SHA256"),
                    ImplicitDeny,
                ),
                ("unsigned", get(None, "log-2026.txt"), ExplicitDeny),
                ("not matched by ?", get(None, "log-26.txt"), ImplicitDeny),
            ],
        },
        Example {
            name: "public, but only for an exact user name: not public",
            bucket_policy: true,
            public: false,
            document: r#"{
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::examplebucket/*",
                    "Condition": {"StringEquals": {"aws:username": "alice"}}
                }]
            }"#,
            requests: vec![
                ("alice", get(Some("alice"), "k"), Allow),
                ("bob", get(Some("bob"), "k"), ImplicitDeny),
                ("anonymous has no user name", get(None, "k"), ImplicitDeny),
            ],
        },
    ]
}

#[test]
fn aws_examples_decide_as_documented() {
    let mut checked = 0;
    for example in examples() {
        let parsed = if example.bucket_policy {
            Policy::parse_bucket(example.document.as_bytes(), BUCKET)
        } else {
            Policy::parse_identity(example.document.as_bytes())
        };
        let policy = parsed.unwrap_or_else(|e| panic!("{}: {e}", example.name));
        assert_eq!(
            policy.is_public(),
            example.public,
            "{}: is_public",
            example.name
        );
        // The order of statements never matters: a deny wins wherever it is.
        let mut reversed = policy.clone();
        reversed.statements.reverse();
        for (what, ctx, want) in &example.requests {
            assert_eq!(policy.evaluate(ctx), *want, "{}: {what}", example.name);
            assert_eq!(
                reversed.evaluate(ctx),
                *want,
                "{}: {what}, reversed",
                example.name
            );
            // The same decision through the combined evaluation, the policy in either role.
            let combined = if example.bucket_policy {
                authorize(ctx, &[], Some(&policy))
            } else {
                authorize(ctx, &[&policy], None)
            };
            assert_eq!(combined, *want, "{}: {what}, authorize", example.name);
            checked += 1;
        }
    }
    assert!(checked >= 60, "{checked} requests");
}

/// One account: a deny anywhere wins, an allow in either the identity or the bucket policy is
/// enough, nothing at all is an implicit deny.
#[test]
fn identity_and_bucket_policies_combine() {
    let identity = Policy::parse_identity(
        br#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*"}}"#,
    )
    .unwrap();
    let bucket_allow = Policy::parse_bucket(
        br#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": {"AWS": "bob"},
            "Action": "s3:PutObject", "Resource": "arn:aws:s3:::examplebucket/*"}}"#,
        BUCKET,
    )
    .unwrap();
    let bucket_deny = Policy::parse_bucket(
        br#"{"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Principal": "*",
            "Action": "s3:*", "Resource": "arn:aws:s3:::examplebucket/*",
            "Condition": {"Bool": {"aws:SecureTransport": false}}}}"#,
        BUCKET,
    )
    .unwrap();
    let get_alice = get(Some("alice"), "k");
    let put_bob = req(Some("bob"), "s3:PutObject", &obj("k"));
    let cases = [
        (
            "identity allow only",
            &get_alice,
            vec![&identity],
            None,
            Allow,
        ),
        (
            "bucket allow only",
            &put_bob,
            vec![],
            Some(&bucket_allow),
            Allow,
        ),
        (
            "identity allow, bucket silent",
            &get_alice,
            vec![&identity],
            Some(&bucket_allow),
            Allow,
        ),
        (
            "no allow anywhere",
            &put_bob,
            vec![&identity],
            None,
            ImplicitDeny,
        ),
        ("no policies at all", &put_bob, vec![], None, ImplicitDeny),
        (
            "identity allow, bucket deny does not apply",
            &get_alice,
            vec![&identity],
            Some(&bucket_deny),
            Allow,
        ),
    ];
    for (what, ctx, identity, bucket, want) in cases {
        assert_eq!(authorize(ctx, &identity, bucket), want, "{what}");
    }
    let http = get(Some("alice"), "k").with_secure_transport(false);
    assert_eq!(
        authorize(&http, &[&identity], Some(&bucket_deny)),
        ExplicitDeny
    );
    // An identity deny beats a bucket allow too.
    let deny_put = Policy::parse_identity(
        br#"{"Version": "2012-10-17", "Statement": {"Effect": "Deny",
            "Action": "s3:PutObject", "Resource": "*"}}"#,
    )
    .unwrap();
    assert_eq!(
        authorize(&put_bob, &[&deny_put], Some(&bucket_allow)),
        ExplicitDeny
    );
}

fn statement(body: &str) -> String {
    format!(r#"{{"Version": "2012-10-17", "Statement": [{{{body}}}]}}"#)
}

const OK_BUCKET: &str = r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#;

#[test]
fn malformed_policies_say_what_is_wrong() {
    let big = statement(&format!(r#"{OK_BUCKET}, "Sid": "{}""#, "x".repeat(21_000)));
    let cases: Vec<(&str, bool, String, &str)> = vec![
        ("not JSON", true, "{\"Version\": ".into(), "not valid JSON"),
        ("an array", true, "[]".into(), "policy: expected a JSON object"),
        ("no statements", true, r#"{"Version": "2012-10-17"}"#.into(), "missing required field \"Statement\""),
        ("empty statements", true, r#"{"Version": "2012-10-17", "Statement": []}"#.into(), "no statements"),
        ("unknown top field", true, r#"{"Version": "2012-10-17", "Statment": []}"#.into(), "unknown field \"Statment\""),
        ("bad version", true, r#"{"Version": "2012-10-18", "Statement": []}"#.into(), "unsupported Version \"2012-10-18\""),
        ("too large", true, big, "more than the 20480 bytes allowed"),
        ("missing Effect", true, statement(r#""Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "Statement[0]: missing required field \"Effect\""),
        ("lowercase field", true, statement(r#""effect": "Allow""#), "unknown field \"effect\""),
        ("bad Effect", true, statement(r#""Sid": "S1", "Effect": "allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "Statement[0] (Sid \"S1\").Effect: Effect must be \"Allow\" or \"Deny\", not \"allow\""),
        ("missing Action", true, statement(r#""Effect": "Allow", "Principal": "*", "Resource": "arn:aws:s3:::examplebucket/*""#), "missing required field \"Action\""),
        ("missing Resource", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject""#), "missing required field \"Resource\""),
        ("Action and NotAction", true, statement(&format!(r#"{OK_BUCKET}, "NotAction": "s3:PutObject""#)), "\"Action\" and \"NotAction\" cannot both be given"),
        ("empty Action", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": [], "Resource": "arn:aws:s3:::examplebucket/*""#), "\"Action\" is empty"),
        ("unknown action", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObjects", "Resource": "arn:aws:s3:::examplebucket/*""#), "invalid action \"s3:GetObjects\": no S3 action has this name"),
        ("wildcard matching nothing", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": "s3:Frob*", "Resource": "arn:aws:s3:::examplebucket/*""#), "invalid action \"s3:Frob*\""),
        ("another service", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": "iam:CreateUser", "Resource": "arn:aws:s3:::examplebucket/*""#), "not an S3 action"),
        ("another bucket", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::otherbucket/*""#), "resource \"arn:aws:s3:::otherbucket/*\" is not within the bucket \"examplebucket\""),
        ("a wildcard bucket", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::example*""#), "not within the bucket"),
        ("star resource in a bucket policy", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*""#), "resource \"*\" is not within the bucket"),
        ("a longer bucket name", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket2""#), "not within the bucket"),
        ("NotResource outside", true, statement(r#""Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::x/*""#), "Statement[0].NotResource: resource \"arn:aws:s3:::x/*\" is not within"),
        ("no principal in a bucket policy", true, statement(r#""Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "needs \"Principal\" or \"NotPrincipal\""),
        ("principal in an identity policy", false, statement(OK_BUCKET), "an identity policy cannot name a principal (\"Principal\")"),
        ("other account", true, statement(r#""Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "invalid principal \"arn:aws:iam::111122223333:user/alice\": percore users are named arn:aws:iam::percore:user/NAME"),
        ("wildcard user", true, statement(r#""Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::percore:user/a*"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "wildcards are not allowed in principals"),
        ("principal string", true, statement(r#""Effect": "Allow", "Principal": "alice", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "a principal string must be \"*\""),
        ("user name with a space", true, statement(r#""Effect": "Allow", "Principal": {"AWS": "al ice"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "a percore user name is 1 to 64 printable ASCII characters"),
        ("empty user name", true, statement(r#""Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::percore:user/"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "invalid principal \"arn:aws:iam::percore:user/\""),
        ("service principal", true, statement(r#""Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "unsupported principal type \"Service\""),
        ("NotPrincipal star", true, statement(r#""Effect": "Deny", "NotPrincipal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*""#), "NotPrincipal \"*\" would match no one"),
        ("unknown operator", true, statement(&format!(r#"{OK_BUCKET}, "Condition": {{"StringEqual": {{"s3:prefix": "a"}}}}"#)), "Statement[0].Condition: unknown condition operator \"StringEqual\""),
        ("unknown key", true, statement(&format!(r#"{OK_BUCKET}, "Condition": {{"StringEquals": {{"aws:SourceVpce": "vpce-1"}}}}"#)), "unknown condition key \"aws:SourceVpce\""),
        ("bad CIDR", true, statement(&format!(r#"{OK_BUCKET}, "Condition": {{"IpAddress": {{"aws:SourceIp": "300.0.0.0/8"}}}}"#)), "\"300.0.0.0/8\" is not a valid value for \"IpAddress\""),
        ("duplicate Sid", true, format!(r#"{{"Version": "2012-10-17", "Statement": [{{"Sid": "A", {OK_BUCKET}}}, {{"Sid": "A", {OK_BUCKET}}}]}}"#), "Statement[1]: the Sid \"A\" is used by more than one statement"),
        ("duplicate field", true, statement(&format!(r#"{OK_BUCKET}, "Effect": "Deny""#)), "the key \"Effect\" appears more than once"),
        ("variable in 2008", true, r#"{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/${aws:username}/*"}}"#.into(), "uses a policy variable, which needs \"Version\": \"2012-10-17\""),
        ("unknown variable", true, statement(r#""Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/${aws:user}/*""#), "unknown key \"aws:user\""),
        ("identity policy on another service's resource", false, statement(r#""Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:iam::percore:user/alice""#), "not an S3 resource"),
        ("identity policy too large", false, statement(&format!(r#""Sid": "{}", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*""#, "y".repeat(7000))), "more than the 6144 bytes allowed"),
    ];
    for (what, bucket_policy, doc, want) in cases {
        let err = if bucket_policy {
            Policy::parse_bucket(doc.as_bytes(), BUCKET)
        } else {
            Policy::parse_identity(doc.as_bytes())
        }
        .expect_err(what);
        assert_eq!(err.code(), "MalformedPolicy");
        assert!(err.to_string().contains(want), "{what}: {err}");
    }
}

#[test]
fn principals_are_listed_for_the_caller_to_check() {
    let policy = Policy::parse_bucket(
        br#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["alice", "arn:aws:iam::percore:user/bob"]},
             "Action": "s3:GetObject", "Resource": "arn:aws:s3:::examplebucket/*"},
            {"Effect": "Deny", "NotPrincipal": {"AWS": "carol"},
             "Action": "s3:PutObject", "Resource": "arn:aws:s3:::examplebucket/*"}]}"#,
        BUCKET,
    )
    .unwrap();
    assert_eq!(
        policy.named_users().into_iter().collect::<Vec<_>>(),
        ["alice", "bob", "carol"]
    );
}

#[test]
fn condition_keys_and_variables_are_listed_for_the_caller_to_check() {
    let policy = Policy::parse_bucket(
        br#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket",
             "Resource": "arn:aws:s3:::examplebucket",
             "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/*"},
                           "IpAddress": {"AWS:SourceIp": "10.0.0.0/8"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::examplebucket/*",
             "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}}}]}"#,
        BUCKET,
    )
    .unwrap();
    assert_eq!(
        policy.keys_used().into_iter().collect::<Vec<_>>(),
        [
            "aws:SourceIp",
            "aws:username",
            "s3:ExistingObjectTag/class",
            "s3:prefix"
        ]
    );
}
