"""Refuse, never ignore: a request asking for a protection percore does not provide
(server-side encryption, ACL grants to email addresses or AWS services) answers
NotImplemented and stores nothing. Values that ask for what percore already does (private
ACL, lock disabled, BucketOwnerEnforced) keep working: real clients send them by default.
Object Lock is done (test_object_lock.py), so are object ACLs (test_acl.py); their headers
where nothing honours them are refused here."""
import pytest
from botocore.exceptions import ClientError

# (case name, extra PutObject arguments). Each asks for a protection percore does not do.
REFUSED_PUTS = [
    ("sse-kms-context", dict(ServerSideEncryption="aws:kms",
                             SSEKMSEncryptionContext="eyJhIjoiYiJ9")),
    ("sse-bucket-key", dict(ServerSideEncryption="aws:kms", BucketKeyEnabled=True)),
    ("acl-aws-exec-read", dict(ACL="aws-exec-read")),
    ("acl-log-delivery-write", dict(ACL="log-delivery-write")),
    ("grant-email", dict(GrantRead='emailAddress="a@example.com"')),
    ("grant-log-delivery",
     dict(GrantFullControl='uri="http://acs.amazonaws.com/groups/s3/LogDelivery"')),
    ("expected-owner", dict(ExpectedBucketOwner="123456789012")),
    ("website-redirect", dict(WebsiteRedirectLocation="/elsewhere")),
]


# SSE-C, SSE-S3 and SSE-KMS are done for PutObject, copies and multipart uploads (test_sse.py,
# test_sse_s3.py, test_sse_multipart.py); what PutObject refuses, they refuse too.
NOT_PUTS = REFUSED_PUTS


def assert_not_implemented(call):
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.response["Error"]["Code"] == "NotImplemented", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def assert_absent(s3, bucket, key):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["Error"]["Code"] in ("404", "NoSuchKey")


@pytest.mark.parametrize("case,extra", REFUSED_PUTS, ids=[c for c, _ in REFUSED_PUTS])
def test_put_asking_for_protection_is_refused_and_stores_nothing(s3, bucket, case, extra):
    assert_not_implemented(
        lambda: s3.put_object(Bucket=bucket, Key=case, Body=b"secret", **extra))
    assert_absent(s3, bucket, case)


@pytest.mark.parametrize("case,extra", NOT_PUTS, ids=[c for c, _ in NOT_PUTS])
def test_multipart_asking_for_protection_is_refused(s3, bucket, case, extra):
    assert_not_implemented(
        lambda: s3.create_multipart_upload(Bucket=bucket, Key=case, **extra))
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize("case,extra", NOT_PUTS, ids=[c for c, _ in NOT_PUTS])
def test_copy_asking_for_protection_is_refused(s3, bucket, case, extra):
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    assert_not_implemented(lambda: s3.copy_object(
        Bucket=bucket, Key="dst-" + case, CopySource={"Bucket": bucket, "Key": "src"}, **extra))
    assert_absent(s3, bucket, "dst-" + case)


def bucket_absent(s3, name):
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("case,extra", [
    # Bucket ACLs are test_acl.py's; these grant to what percore does not have.
    ("acl-log-delivery-write", dict(ACL="log-delivery-write")),
    ("acl-aws-exec-read", dict(ACL="aws-exec-read")),
    ("grant-email", dict(GrantWrite='emailAddress="a@example.com"')),
])
def test_create_bucket_asking_for_protection_is_refused(s3, case, extra):
    name = f"refused-{case}"
    assert_not_implemented(lambda: s3.create_bucket(Bucket=name, **extra))
    assert bucket_absent(s3, name)


@pytest.mark.parametrize("call", [
    "put_bucket_encryption", "put_bucket_acl", "put_object_acl", "put_bucket_replication",
])
def test_protection_configurations_are_refused(s3, bucket, call):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    args = {
        # Bucket default encryption is test_sse_s3.py's; S3 Bucket Keys percore has not.
        "put_bucket_encryption": dict(ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
             "BucketKeyEnabled": True}]}),
        "put_bucket_acl": dict(ACL="log-delivery-write"),
        "put_object_acl": dict(Key="k", ACL="aws-exec-read"),
        "put_bucket_replication": dict(ReplicationConfiguration={
            "Role": "arn:aws:iam::1:role/r", "Rules": [{
                "Status": "Enabled", "Priority": 1, "Filter": {},
                "DeleteMarkerReplication": {"Status": "Disabled"},
                "Destination": {"Bucket": "arn:aws:s3:::elsewhere"}}]}),
    }[call]
    assert_not_implemented(lambda: getattr(s3, call)(Bucket=bucket, **args))
    # The object stays as it was: deletable, since nothing locked it.
    s3.delete_object(Bucket=bucket, Key="k")
    assert_absent(s3, bucket, "k")


def test_what_percore_does_stays_accepted(s3):
    # rclone and s3cmd send x-amz-acl: private by default; bucket-owner-full-control is what a
    # bucket owner's own writes are.
    name = "accepted-values"
    s3.create_bucket(Bucket=name, ACL="private", ObjectLockEnabledForBucket=False,
                     ObjectOwnership="BucketOwnerEnforced")
    for acl in ["private", "bucket-owner-full-control", "bucket-owner-read"]:
        s3.put_object(Bucket=name, Key=acl, Body=b"v", ACL=acl)
        assert s3.get_object(Bucket=name, Key=acl)["Body"].read() == b"v"
    up = s3.create_multipart_upload(Bucket=name, Key="mp", ACL="private")["UploadId"]
    s3.abort_multipart_upload(Bucket=name, Key="mp", UploadId=up)
    s3.copy_object(Bucket=name, Key="copy", CopySource={"Bucket": name, "Key": "private"},
                   ACL="bucket-owner-full-control")
    assert s3.get_object(Bucket=name, Key="copy")["Body"].read() == b"v"


def test_lock_headers_where_nothing_honours_them_are_refused(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]

    def add_lock_header(request, **_):
        request.headers["x-amz-object-lock-legal-hold"] = "ON"

    s3.meta.events.register("before-sign.s3.UploadPart", add_lock_header)
    try:
        assert_not_implemented(lambda: s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"x" * 10))
    finally:
        s3.meta.events.unregister("before-sign.s3.UploadPart", add_lock_header)
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=up).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up)


def test_unknown_canned_acl_is_invalid(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="everyone-everything")
    assert e.value.response["Error"]["Code"] == "InvalidArgument"
    assert_absent(s3, bucket, "k")
