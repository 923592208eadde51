"""Bucket policies: Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus, and how they decide
what other users and anonymous callers may do (boto3 signed and unsigned, and plain HTTP)."""
import http.client
import json
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from conftest import anon_client


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def stmt(effect, principal, action, resource, condition=None, sid=None):
    s = {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource}
    if condition:
        s["Condition"] = condition
    if sid:
        s["Sid"] = sid
    return s


def plain(server, method, path):
    """An unsigned request over plain HTTP: (status, body)."""
    u = urllib.parse.urlparse(server.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_put_get_delete_and_status(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert code(e) == "NoSuchBucketPolicy" and status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy_status(Bucket=bucket)
    assert code(e) == "NoSuchBucketPolicy"
    private = doc(stmt("Allow", {"AWS": "alice"}, "s3:GetObject", f"arn:aws:s3:::{bucket}/*"))
    s3.put_bucket_policy(Bucket=bucket, Policy=private)
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == private
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    public = doc(stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*"))
    s3.put_bucket_policy(Bucket=bucket, Policy=public)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    pinned = doc(stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
                      {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    s3.put_bucket_policy(Bucket=bucket, Policy=pinned)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    s3.delete_bucket_policy(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert code(e) == "NoSuchBucketPolicy"


@pytest.mark.parametrize("policy, says", [
    ("{", "not valid JSON"),
    (doc(stmt("Allow", "*", "s3:GetObjects", "arn:aws:s3:::BUCKET/*")), "s3:GetObjects"),
    (doc(stmt("Allow", "*", "s3:GetObject", "arn:aws:s3:::other/*")), "not within the bucket"),
    (doc(stmt("Allow", {"AWS": "bob"}, "s3:GetObject", "arn:aws:s3:::BUCKET/*")),
     "Invalid principal in policy"),
    (doc(stmt("Deny", "*", "s3:GetObject", "arn:aws:s3:::BUCKET/*",
              {"StringEqual": {"aws:username": "x"}})), "StringEqual"),
    (json.dumps({"Version": "2012-10-17", "Statement": []}), "no statements"),
])
def test_malformed_policy(s3, bucket, policy, says):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=policy.replace("BUCKET", bucket))
    assert code(e) == "MalformedPolicy" and status(e) == 400
    assert says in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert code(e) == "NoSuchBucketPolicy"


def test_tag_condition_keys_are_refused(s3, bucket):
    policy = doc(stmt("Deny", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
                      {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}}))
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert code(e) == "NotImplemented"


def test_cross_user_allow_and_deny(s3, alice, bucket):
    s3.put_object(Bucket=bucket, Key="shared/a", Body=b"shared")
    s3.put_object(Bucket=bucket, Key="private/a", Body=b"private")
    with pytest.raises(ClientError) as e:
        alice.get_object(Bucket=bucket, Key="shared/a")
    assert code(e) == "AccessDenied"
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", {"AWS": "arn:aws:iam::percore:user/alice"},
             ["s3:GetObject", "s3:PutObject"], f"arn:aws:s3:::{bucket}/shared/*"),
        stmt("Deny", {"AWS": "alice"}, "s3:GetObject", f"arn:aws:s3:::{bucket}/shared/no")))
    assert alice.get_object(Bucket=bucket, Key="shared/a")["Body"].read() == b"shared"
    alice.put_object(Bucket=bucket, Key="shared/from-alice", Body=b"hi")
    s3.put_object(Bucket=bucket, Key="shared/no", Body=b"x")
    for key in ["private/a", "shared/no"]:
        with pytest.raises(ClientError) as e:
            alice.get_object(Bucket=bucket, Key=key)
        assert code(e) == "AccessDenied", key
    with pytest.raises(ClientError) as e:
        alice.put_object(Bucket=bucket, Key="private/b", Body=b"x")
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        alice.list_objects_v2(Bucket=bucket)
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        alice.delete_object(Bucket=bucket, Key="shared/a")
    assert code(e) == "AccessDenied"
    # What alice wrote belongs to the bucket owner; her bucket list stays hers.
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="shared/from-alice", FetchOwner=True)
    owner = s3.list_buckets()["Owner"]
    assert listed["Contents"][0]["Owner"]["ID"] == owner["ID"]
    assert bucket not in [b["Name"] for b in alice.list_buckets()["Buckets"]]
    # The policy operations stay the owner's even when a policy grants them.
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", {"AWS": "alice"}, ["s3:GetBucketPolicy", "s3:DeleteBucketPolicy"],
             f"arn:aws:s3:::{bucket}")))
    with pytest.raises(ClientError) as e:
        alice.get_bucket_policy(Bucket=bucket)
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        alice.delete_bucket_policy(Bucket=bucket)
    assert code(e) == "AccessDenied"


def test_delete_objects_is_judged_per_key(s3, alice, bucket):
    for key in ["shared/a", "private/a"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", {"AWS": "alice"}, "s3:DeleteObject", f"arn:aws:s3:::{bucket}/shared/*")))
    out = alice.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "shared/a"}, {"Key": "private/a"}]})
    assert [d["Key"] for d in out.get("Deleted", [])] == ["shared/a"]
    assert [(x["Key"], x["Code"]) for x in out["Errors"]] == [("private/a", "AccessDenied")]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["private/a"]


def test_copy_needs_read_on_the_source(s3, alice, bucket):
    s3.put_object(Bucket=bucket, Key="shared/src", Body=b"src")
    s3.put_object(Bucket=bucket, Key="private/src", Body=b"secret")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", {"AWS": "alice"}, ["s3:GetObject", "s3:PutObject"],
             f"arn:aws:s3:::{bucket}/shared/*")))
    alice.copy_object(Bucket=bucket, Key="shared/copy", CopySource=f"{bucket}/shared/src")
    assert s3.get_object(Bucket=bucket, Key="shared/copy")["Body"].read() == b"src"
    with pytest.raises(ClientError) as e:
        alice.copy_object(Bucket=bucket, Key="shared/leak", CopySource=f"{bucket}/private/src")
    assert code(e) == "AccessDenied"


def test_owner_explicit_deny(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep/a", Body=b"x")
    s3.put_object(Bucket=bucket, Key="tmp/a", Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Deny", "*", "s3:DeleteObject", f"arn:aws:s3:::{bucket}/keep/*")))
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="keep/a")
    assert code(e) == "AccessDenied"
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep/a"},
                                                               {"Key": "tmp/a"}]})
    assert [x["Key"] for x in out["Errors"]] == ["keep/a"]
    s3.get_object(Bucket=bucket, Key="keep/a")
    # The owner still manages the policy, and without it may delete again.
    s3.delete_bucket_policy(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="keep/a")


def test_anonymous_read_of_a_public_bucket(s3, anon, server, bucket):
    s3.put_object(Bucket=bucket, Key="site/index.html", Body=b"<p>hi</p>")
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="site/index.html")
    assert code(e) == "AccessDenied" and status(e) == 403
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/site/*")))
    assert anon.get_object(Bucket=bucket, Key="site/index.html")["Body"].read() == b"<p>hi</p>"
    assert anon.head_object(Bucket=bucket, Key="site/index.html")["ContentLength"] == 9
    # response-* overrides are for signed requests (as AWS).
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="site/index.html", ResponseContentType="x/y")
    assert code(e) == "InvalidRequest" and status(e) == 400
    got = s3.get_object(Bucket=bucket, Key="site/index.html", ResponseContentType="x/y")
    assert got["ContentType"] == "x/y"
    # Allowed to read but not to list: a missing key is 403, never 404.
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="site/missing")
    assert code(e) == "AccessDenied" and status(e) == 403
    with pytest.raises(ClientError) as e:
        anon.head_object(Bucket=bucket, Key="site/missing")
    assert status(e) == 403
    assert plain(server, "HEAD", f"/{bucket}/site/missing") == (403, b"")
    assert plain(server, "HEAD", f"/{bucket}/other") == (403, b"")
    st, body = plain(server, "GET", f"/{bucket}/other")
    assert st == 403 and b"<Code>AccessDenied</Code>" in body
    # The owner still learns it is missing.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="site/missing")
    assert status(e) == 404
    # Nothing else is allowed.
    for call in [lambda: anon.put_object(Bucket=bucket, Key="site/x", Body=b"x"),
                 lambda: anon.delete_object(Bucket=bucket, Key="site/index.html"),
                 lambda: anon.list_objects_v2(Bucket=bucket),
                 lambda: anon.get_object(Bucket=bucket, Key="other"),
                 lambda: anon.get_bucket_policy(Bucket=bucket),
                 lambda: anon.list_buckets(),
                 lambda: anon.create_bucket(Bucket=bucket + "-anon")]:
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "AccessDenied"
    # With ListBucket, a missing key is 404 and the listing works.
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/site/*"),
        stmt("Allow", "*", "s3:ListBucket", f"arn:aws:s3:::{bucket}")))
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="site/missing")
    assert code(e) == "NoSuchKey" and status(e) == 404
    assert plain(server, "HEAD", f"/{bucket}/site/missing") == (404, b"")
    keys = [o["Key"] for o in anon.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["site/index.html"]
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket="no-such-bucket-here", Key="k")
    assert code(e) == "NoSuchBucket"


def test_signed_non_owner_gets_403_for_missing_keys_without_list(s3, alice, bucket):
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", {"AWS": "alice"}, "s3:GetObject", f"arn:aws:s3:::{bucket}/*")))
    with pytest.raises(ClientError) as e:
        alice.get_object(Bucket=bucket, Key="missing")
    assert status(e) == 403


def test_anonymous_requests_still_pass_the_other_checks(s3, server, bucket):
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", "*", "s3:PutObject", f"arn:aws:s3:::{bucket}/drop/*")))
    u = urllib.parse.urlparse(server.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("PUT", f"/{bucket}/drop/a", body=b"x",
                     headers={"x-amz-website-redirect-location": "/elsewhere"})
        r = conn.getresponse()
        assert r.status == 501 and b"NotImplemented" in r.read()
    finally:
        conn.close()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("PUT", f"/{bucket}/drop/b", body=b"dropped")
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    finally:
        conn.close()
    assert s3.get_object(Bucket=bucket, Key="drop/b")["Body"].read() == b"dropped"


def test_source_ip_condition(s3, alice, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    elsewhere = doc(stmt("Allow", {"AWS": "alice"}, "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
                         {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    s3.put_bucket_policy(Bucket=bucket, Policy=elsewhere)
    with pytest.raises(ClientError) as e:
        alice.get_object(Bucket=bucket, Key="k")
    assert code(e) == "AccessDenied"
    s3.put_bucket_policy(Bucket=bucket, Policy=elsewhere.replace("10.0.0.0/8", "127.0.0.0/8"))
    assert alice.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_prefix_condition_on_list(s3, alice, bucket):
    for key in ["home/alice/a", "home/bob/b"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", {"AWS": "alice"}, "s3:ListBucket", f"arn:aws:s3:::{bucket}",
             {"StringLike": {"s3:prefix": "home/${aws:username}/*"}})))
    out = alice.list_objects_v2(Bucket=bucket, Prefix="home/alice/")
    assert [o["Key"] for o in out["Contents"]] == ["home/alice/a"]
    for prefix in ["home/bob/", ""]:
        with pytest.raises(ClientError) as e:
            alice.list_objects_v2(Bucket=bucket, Prefix=prefix)
        assert code(e) == "AccessDenied", prefix


def test_deny_without_tls(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Deny", "*", "s3:*", [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
             {"Bool": {"aws:SecureTransport": "false"}})))
    # This server speaks plain HTTP: everything but the policy operations is refused.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert code(e) == "AccessDenied"
    s3.delete_bucket_policy(Bucket=bucket)
    s3.get_object(Bucket=bucket, Key="k")


def test_policy_goes_with_its_bucket(s3, anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*")))
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"new")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert code(e) == "NoSuchBucketPolicy"
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="k")
    assert code(e) == "AccessDenied"


def test_policy_survives_a_restart(tmp_path):
    from conftest import Server
    data = str(tmp_path / "d")
    s = Server(data)
    try:
        owner = s.client()
        owner.create_bucket(Bucket="kept")
        owner.put_object(Bucket="kept", Key="k", Body=b"x")
        owner.put_bucket_policy(Bucket="kept", Policy=doc(
            stmt("Allow", "*", "s3:GetObject", "arn:aws:s3:::kept/*")))
    finally:
        assert s.stop() == 0
    s = Server(data)
    try:
        assert anon_client(s).get_object(Bucket="kept", Key="k")["Body"].read() == b"x"
        assert "kept/*" in s.client().get_bucket_policy(Bucket="kept")["Policy"]
    finally:
        assert s.stop() == 0
