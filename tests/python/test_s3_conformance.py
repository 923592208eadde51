"""S3 behaviours where percore answered differently from AWS (issue: conformance gaps), each
checked as AWS documents it."""
import base64
import uuid

import pytest
from botocore.exceptions import ClientError


def code(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def test_list_objects_v1_always_answers_a_marker(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    got = s3.list_objects(Bucket=bucket)
    assert got["Marker"] == ""
    assert s3.list_objects(Bucket=bucket, Marker="a")["Marker"] == "a"


def test_an_empty_delimiter_is_no_delimiter_and_not_echoed(s3, bucket):
    for key in ("d/1", "d/2", "e"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    v2 = s3.list_objects_v2(Bucket=bucket, Delimiter="")
    assert "Delimiter" not in v2
    assert [o["Key"] for o in v2["Contents"]] == ["d/1", "d/2", "e"]
    assert "Delimiter" not in s3.list_objects(Bucket=bucket, Delimiter="")
    assert "Delimiter" not in s3.list_object_versions(Bucket=bucket, Delimiter="")
    assert s3.list_objects_v2(Bucket=bucket, Delimiter="/")["Delimiter"] == "/"


def test_list_buckets_pages_by_max_buckets_prefix_and_token(s3):
    prefix = f"pg-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i}" for i in range(3)]
    for n in names:
        s3.create_bucket(Bucket=n)
    try:
        first = s3.list_buckets(MaxBuckets=2, Prefix=prefix)
        assert [b["Name"] for b in first["Buckets"]] == names[:2]
        assert first["Prefix"] == prefix
        token = first["ContinuationToken"]
        rest = s3.list_buckets(MaxBuckets=2, Prefix=prefix, ContinuationToken=token)
        assert [b["Name"] for b in rest["Buckets"]] == names[2:]
        assert "ContinuationToken" not in rest
        assert [b["Name"] for b in s3.list_buckets(Prefix=prefix)["Buckets"]] == names
        other = s3.list_buckets(Prefix=prefix, BucketRegion="eu-west-1")
        assert other["Buckets"] == []
        for bad in ({"MaxBuckets": 10001}, {"ContinuationToken": "zz"}):
            with pytest.raises(ClientError) as e:
                s3.list_buckets(**bad)
            assert code(e.value) == ("InvalidArgument", 400), bad
    finally:
        for n in names:
            s3.delete_bucket(Bucket=n)


def test_content_md5_that_is_not_a_digest_is_invalid_digest(s3, bucket):
    for md5 in ("abc=", base64.b64encode(b"12345678").decode(), "not base64!"):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="m", Body=b"data", ContentMD5=md5)
        assert code(e.value) == ("InvalidDigest", 400), md5
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="m")
    assert code(e.value)[0] == "NoSuchKey"


def test_a_lifecycle_rule_sent_without_an_id_gets_one(s3, bucket):
    rules = [
        {"Filter": {"Prefix": "a/"}, "Status": "Enabled", "Expiration": {"Days": 3}},
        {"Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 9}},
        {"ID": "mine", "Filter": {"Prefix": "b/"}, "Status": "Enabled",
         "Expiration": {"Days": 1}},
    ]
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    ids = [r.get("ID", "") for r in got]
    assert ids[2] == "mine"
    assert ids[0] and ids[1] and ids[0] != ids[1]
    assert got[1]["Filter"] == {"Prefix": ""}
    # Kept with the rules: the same IDs on every read.
    again = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in again] == ids
