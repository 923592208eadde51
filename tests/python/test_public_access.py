"""Block Public Access (bucket level) and bucket ownership controls: the configuration calls,
what each PublicAccessBlock setting refuses (public policies, public ACLs, access through a
public policy), who may change them, and that a re-created bucket starts without them."""
import pytest
import urllib3
from botocore.exceptions import ClientError

from conftest import anon_client
from test_policy import code, doc, status, stmt

ALL_ON = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
          "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
ALL_USERS = 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'


def block(**settings):
    return {"PublicAccessBlockConfiguration": settings}


def public_read(bucket):
    return doc(stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*"))


def test_put_get_delete(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket=bucket)
    assert code(e) == "NoSuchPublicAccessBlockConfiguration" and status(e) == 404
    s3.put_public_access_block(Bucket=bucket, **block(BlockPublicPolicy=True,
                                                      IgnorePublicAcls=False))
    got = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    # A setting left out is false.
    assert got == {"BlockPublicAcls": False, "IgnorePublicAcls": False,
                   "BlockPublicPolicy": True, "RestrictPublicBuckets": False}
    s3.put_public_access_block(Bucket=bucket, **block(**ALL_ON))
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == ALL_ON
    s3.delete_public_access_block(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket=bucket)
    assert code(e) == "NoSuchPublicAccessBlockConfiguration"
    with pytest.raises(ClientError) as e:
        s3.put_public_access_block(Bucket=f"{bucket}-missing", **block(**ALL_ON))
    assert code(e) == "NoSuchBucket"


def test_block_public_policy(s3, bucket):
    s3.put_public_access_block(Bucket=bucket, **block(BlockPublicPolicy=True))
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    assert code(e) == "AccessDenied" and status(e) == 403
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert code(e) == "NoSuchBucketPolicy"
    # Not public: a named user, or everyone but only from a fixed address range.
    named = doc(stmt("Allow", {"AWS": "alice"}, "s3:GetObject", f"arn:aws:s3:::{bucket}/*"))
    s3.put_bucket_policy(Bucket=bucket, Policy=named)
    fenced = doc(stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
                      {"IpAddress": {"aws:SourceIp": "10.1.0.0/16"}}))
    s3.put_bucket_policy(Bucket=bucket, Policy=fenced)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    # Open to the whole internet is public again.
    everywhere = doc(stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
                          {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}))
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=everywhere)
    assert code(e) == "AccessDenied"
    # Lifting the block lets it through.
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True


def test_restrict_public_buckets(s3, alice, anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert alice.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    s3.put_public_access_block(Bucket=bucket, **block(RestrictPublicBuckets=True))
    for client in (anon, alice):
        with pytest.raises(ClientError) as e:
            client.get_object(Bucket=bucket, Key="k")
        assert code(e) == "AccessDenied" and status(e) == 403
    # The owner is never restricted.
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    # A user the public policy names gets through it; anonymous callers still do not.
    named = doc(stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*"),
                stmt("Allow", {"AWS": "alice"}, "s3:ListBucket", f"arn:aws:s3:::{bucket}"))
    s3.put_bucket_policy(Bucket=bucket, Policy=named)
    assert alice.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="k")
    assert code(e) == "AccessDenied"
    # A policy that is not public is not restricted.
    fenced = doc(stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
                      {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}))
    s3.put_bucket_policy(Bucket=bucket, Policy=fenced)
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    # Deleting the block opens the public policy again.
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    s3.delete_public_access_block(Bucket=bucket)
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_restrict_public_buckets_covers_copy_sources(s3, alice, bucket):
    # Alice may write to the owner's second bucket; the source is public to read.
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    target = f"{bucket}-target"
    s3.create_bucket(Bucket=target)
    s3.put_bucket_policy(Bucket=target, Policy=doc(
        stmt("Allow", {"AWS": "alice"}, "s3:PutObject", f"arn:aws:s3:::{target}/*")))
    source = {"Bucket": bucket, "Key": "k"}
    alice.copy_object(Bucket=target, Key="c1", CopySource=source)
    s3.put_public_access_block(Bucket=bucket, **block(RestrictPublicBuckets=True))
    with pytest.raises(ClientError) as e:
        alice.copy_object(Bucket=target, Key="c2", CopySource=source)
    assert code(e) == "AccessDenied"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=target)["Contents"]] == ["c1"]


def test_restrict_public_buckets_covers_delete_objects(s3, anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", "*", "s3:DeleteObject", f"arn:aws:s3:::{bucket}/*")))
    s3.put_public_access_block(Bucket=bucket, **block(RestrictPublicBuckets=True))
    with pytest.raises(ClientError) as e:
        anon.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert code(e) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


@pytest.mark.parametrize("call", ["put_object", "copy_object", "create_multipart_upload",
                                  "put_object_acl", "put_bucket_acl"])
@pytest.mark.parametrize("acl", [dict(ACL="public-read"), dict(ACL="authenticated-read"),
                                 dict(GrantRead=ALL_USERS)])
def test_block_public_acls(s3, bucket, call, acl):
    s3.put_object(Bucket=bucket, Key="src", Body=b"v")
    args = {
        "put_object": dict(Key="k", Body=b"new"),
        "copy_object": dict(Key="k", CopySource={"Bucket": bucket, "Key": "src"}),
        "create_multipart_upload": dict(Key="k"),
        "put_object_acl": dict(Key="src"),
        "put_bucket_acl": {},
    }[call]
    if call in ("put_object", "copy_object", "create_multipart_upload") and "GrantRead" in acl:
        acl = dict(GrantFullControl=ALL_USERS)
    if call == "put_bucket_acl" and acl.get("ACL") == "public-read":
        acl = dict(ACL="public-read-write")
    s3.put_public_access_block(Bucket=bucket, **block(BlockPublicAcls=True))
    with pytest.raises(ClientError) as e:
        getattr(s3, call)(Bucket=bucket, **args, **acl)
    assert code(e) == "AccessDenied" and status(e) == 403
    # Nothing was written.
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert status(e) == 404
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 1
    assert len(s3.get_object_acl(Bucket=bucket, Key="src")["Grants"]) == 1
    # An ACL that is not public is allowed, block or not.
    if call in ("put_object_acl", "put_bucket_acl"):
        getattr(s3, call)(Bucket=bucket, **args, GrantRead=f'id="{owner_id(s3)}"')
    # Without the block the public one is allowed too (test_acl.py has what it grants).
    s3.delete_public_access_block(Bucket=bucket)
    getattr(s3, call)(Bucket=bucket, **args, **acl)


def owner_id(s3):
    return s3.list_buckets()["Owner"]["ID"]


@pytest.mark.parametrize("call", ["put_object_acl", "put_bucket_acl"])
def test_block_public_acls_in_acl_bodies(s3, bucket, call):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    me = owner_id(s3)

    def policy(*grantees):
        return {"Owner": {"ID": me}, "Grants": [
            {"Grantee": g, "Permission": "READ"} for g in grantees]}
    everyone = {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}
    owner = {"Type": "CanonicalUser", "ID": me}
    key = dict(Key="k") if call == "put_object_acl" else {}
    s3.put_public_access_block(Bucket=bucket, **block(BlockPublicAcls=True))
    with pytest.raises(ClientError) as e:
        getattr(s3, call)(Bucket=bucket, **key, AccessControlPolicy=policy(owner, everyone))
    assert code(e) == "AccessDenied"
    if call == "put_bucket_acl":
        s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy(owner))
        assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 1
        return
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=policy(owner))
    assert len(s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]) == 1


def test_block_public_acls_on_presigned_urls(s3, bucket):
    s3.put_public_access_block(Bucket=bucket, **block(BlockPublicAcls=True))
    url = s3.generate_presigned_url("put_object", Params={
        "Bucket": bucket, "Key": "k", "ACL": "public-read"}, ExpiresIn=60)
    # botocore signs the ACL as a header the request must carry.
    r = urllib3.request("PUT", url, body=b"v", headers={"x-amz-acl": "public-read"}, timeout=30)
    assert r.status == 403 and b"<Code>AccessDenied</Code>" in r.data
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert status(e) == 404


@pytest.mark.parametrize("field", ["x-amz-acl", "acl"])
def test_block_public_acls_on_browser_post(server, bucket, field):
    s3 = server.client(signature_version="s3v4")

    def post():
        form = s3.generate_presigned_post(bucket, "k", Fields={field: "public-read"},
                                          Conditions=[{field: "public-read"}],
                                          ExpiresIn=60)
        return urllib3.request("POST", form["url"], timeout=30,
                               fields={**form["fields"], "file": ("k", b"v")})
    s3.put_public_access_block(Bucket=bucket, **block(BlockPublicAcls=True))
    r = post()
    assert r.status == 403 and b"<Code>AccessDenied</Code>" in r.data
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert status(e) == 404
    s3.delete_public_access_block(Bucket=bucket)
    r = post()
    assert r.status == 204, r.data
    acl = s3.get_object_acl(Bucket=bucket, Key="k")
    assert "http://acs.amazonaws.com/groups/global/AllUsers" in [
        g["Grantee"].get("URI") for g in acl["Grants"]]


def test_only_the_owner_or_the_policy(s3, alice, anon, bucket):
    s3.put_public_access_block(Bucket=bucket, **block(**ALL_ON))
    for client in (alice, anon):
        for call, args in [("get_public_access_block", {}),
                           ("put_public_access_block", block()),
                           ("delete_public_access_block", {}),
                           ("get_bucket_ownership_controls", {})]:
            with pytest.raises(ClientError) as e:
                getattr(client, call)(Bucket=bucket, **args)
            assert code(e) == "AccessDenied", (call, client)
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == ALL_ON
    # A policy may grant reading it to another user ...
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", {"AWS": "alice"}, "s3:GetBucketPublicAccessBlock",
             f"arn:aws:s3:::{bucket}"),
        stmt("Deny", "*", "s3:PutBucketPublicAccessBlock", f"arn:aws:s3:::{bucket}")))
    got = alice.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == ALL_ON
    with pytest.raises(ClientError) as e:
        alice.delete_public_access_block(Bucket=bucket)
    assert code(e) == "AccessDenied"
    # ... but cannot deny the owner changing or deleting it.
    s3.put_public_access_block(Bucket=bucket, **block(BlockPublicAcls=True))
    s3.delete_public_access_block(Bucket=bucket)


def test_recreated_bucket_starts_without_configurations(s3, bucket):
    s3.put_public_access_block(Bucket=bucket, **block(**ALL_ON))
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_public_access_block(Bucket=bucket)
    assert code(e) == "NoSuchPublicAccessBlockConfiguration"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_ownership_controls(Bucket=bucket)
    assert code(e) == "OwnershipControlsNotFoundError"
    # Nothing of the old block applies: a public policy is accepted.
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))


def test_ownership_controls(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_ownership_controls(Bucket=bucket)
    assert code(e) == "OwnershipControlsNotFoundError" and status(e) == 404
    enforced = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=enforced)
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"] == enforced
    for value in ("ObjectWriter", "BucketOwnerPreferred", "BucketOwnerEnforced"):
        controls = {"Rules": [{"ObjectOwnership": value}]}
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=controls)
        assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"] == controls
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_ownership_controls(Bucket=bucket)
    assert code(e) == "OwnershipControlsNotFoundError"


def test_ownership_controls_bad_documents(s3, bucket):
    for rules in ([], [{"ObjectOwnership": "Everyone"}],
                  [{"ObjectOwnership": "BucketOwnerEnforced"}] * 2):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_ownership_controls(Bucket=bucket,
                                             OwnershipControls={"Rules": rules})
        assert code(e) == "MalformedXML" and status(e) == 400
    with pytest.raises(ClientError) as e:
        s3.get_bucket_ownership_controls(Bucket=bucket)
    assert code(e) == "OwnershipControlsNotFoundError"


def test_create_bucket_with_object_ownership(s3):
    name = f"pab-ownership-{id(s3)}"
    s3.create_bucket(Bucket=name, ObjectOwnership="BucketOwnerEnforced")
    try:
        got = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]
        assert got == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    finally:
        s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    try:
        with pytest.raises(ClientError) as e:
            s3.get_bucket_ownership_controls(Bucket=name)
        assert code(e) == "OwnershipControlsNotFoundError"
    finally:
        s3.delete_bucket(Bucket=name)


def test_policy_and_block_are_separate(s3, bucket):
    """Deleting the policy leaves the block, and the reverse."""
    s3.put_public_access_block(Bucket=bucket, **block(RestrictPublicBuckets=True))
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    s3.delete_bucket_policy(Bucket=bucket)
    got = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got["RestrictPublicBuckets"] is True
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    s3.delete_public_access_block(Bucket=bucket)
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == public_read(bucket)


def test_configurations_survive_a_restart(tmp_path):
    from conftest import Server
    data = str(tmp_path / "d")
    s = Server(data)
    try:
        owner = s.client()
        owner.create_bucket(Bucket="kept", ObjectOwnership="BucketOwnerEnforced")
        owner.put_object(Bucket="kept", Key="k", Body=b"x")
        owner.put_bucket_policy(Bucket="kept", Policy=public_read("kept"))
        owner.put_public_access_block(Bucket="kept", **block(RestrictPublicBuckets=True,
                                                            BlockPublicPolicy=True))
    finally:
        assert s.stop() == 0
    s = Server(data)
    try:
        owner = s.client()
        got = owner.get_public_access_block(Bucket="kept")["PublicAccessBlockConfiguration"]
        assert got["RestrictPublicBuckets"] and got["BlockPublicPolicy"]
        with pytest.raises(ClientError) as e:
            anon_client(s).get_object(Bucket="kept", Key="k")
        assert code(e) == "AccessDenied"
        got = owner.get_bucket_ownership_controls(Bucket="kept")["OwnershipControls"]
        assert got == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    finally:
        assert s.stop() == 0
