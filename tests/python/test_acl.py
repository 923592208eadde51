"""Bucket and object ACLs: each canned ACL decides who may list, write and read or change the
ACL; grants by id and by group in headers and bodies; Get/Put Bucket/Object Acl round trips;
object ACLs per version, on PUT, copy, multipart and POST forms; the public access block
(BlockPublicAcls, IgnorePublicAcls); a Deny in the bucket policy beats a grant;
BucketOwnerEnforced disables ACLs; ObjectWriter and BucketOwnerPreferred make writers own
what they write."""
import pytest
from botocore.exceptions import ClientError

from conftest import ALICE
from test_policy import code, doc, status, stmt

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def can(call, **kw):
    """Whether `call` succeeds; AccessDenied is False, any other error fails the test."""
    try:
        call(**kw)
        return True
    except ClientError as e:
        # HEAD answers have no body: 403 is all there is.
        assert e.response["Error"]["Code"] in ("AccessDenied", "403"), e
        return False


def abilities(client, bucket, key="w"):
    """What `client` may do to `bucket`: list, write (put then delete), read its ACL,
    write its ACL (a no-op private put would change it, so only GetBucketAcl is tried)."""
    return {
        "list": can(client.list_objects_v2, Bucket=bucket),
        "write": can(client.put_object, Bucket=bucket, Key=key, Body=b"x"),
        "read_acp": can(client.get_bucket_acl, Bucket=bucket),
    }


def grants(acl):
    """The grants of a Get*Acl answer as (grantee, permission) pairs."""
    out = set()
    for g in acl["Grants"]:
        who = g["Grantee"].get("ID") or g["Grantee"].get("URI")
        out.add((who, g["Permission"]))
    return out


@pytest.mark.parametrize("canned, anon_can, alice_can", [
    ("private", dict(list=False, write=False), dict(list=False, write=False)),
    ("public-read", dict(list=True, write=False), dict(list=True, write=False)),
    ("public-read-write", dict(list=True, write=True), dict(list=True, write=True)),
    ("authenticated-read", dict(list=False, write=False), dict(list=True, write=False)),
    ("bucket-owner-full-control", dict(list=False, write=False), dict(list=False, write=False)),
])
def test_canned_acls_on_create(server, s3, alice, anon, canned, anon_can, alice_can):
    bucket = f"acl-canned-{canned}"
    s3.create_bucket(Bucket=bucket, ACL=canned)
    for client, want in [(anon, anon_can), (alice, alice_can)]:
        got = abilities(client, bucket)
        assert got == {**want, "read_acp": False}, (canned, got)
    # The owner can do everything, and what others wrote is the owner's.
    assert abilities(s3, bucket) == {"list": True, "write": True, "read_acp": True}
    listed = s3.list_objects_v2(Bucket=bucket, FetchOwner=True).get("Contents", [])
    assert [o["Owner"]["ID"] for o in listed] == [server.access_key]
    # Writers can delete too; a grant of WRITE never gives reads of objects.
    if alice_can["write"]:
        with pytest.raises(ClientError) as e:
            alice.get_object(Bucket=bucket, Key="w")
        assert code(e) == "AccessDenied"
        alice.delete_object(Bucket=bucket, Key="w")
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_a_writer_uploads_in_parts(s3, alice, bucket):
    s3.put_bucket_acl(Bucket=bucket, GrantWrite=f'id="{ALICE[0]}"')
    up = alice.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etag = alice.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1,
                             Body=b"p" * 10)["ETag"]
    assert [p["PartNumber"] for p in alice.list_parts(Bucket=bucket, Key="mp",
                                                      UploadId=up)["Parts"]] == [1]
    alice.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"p" * 10
    up = alice.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    alice.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=up)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # Listing uploads is a READ of the bucket, which alice was not granted.
    assert not can(alice.list_multipart_uploads, Bucket=bucket)


def test_read_lists_every_way(s3, alice, anon, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.create_multipart_upload(Bucket=bucket, Key="mp")
    calls = [anon.list_objects, anon.list_objects_v2, anon.list_object_versions,
             anon.list_multipart_uploads, anon.head_bucket]
    assert not any(can(c, Bucket=bucket) for c in calls)
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert all(can(c, Bucket=bucket) for c in calls)
    assert [v["Key"] for v in anon.list_object_versions(Bucket=bucket)["Versions"]] == ["k"]
    assert [u["Key"] for u in anon.list_multipart_uploads(Bucket=bucket)["Uploads"]] == ["mp"]
    # READ lists; it neither reads objects nor deletes versions.
    assert not can(anon.get_object, Bucket=bucket, Key="k")
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    v = s3.list_object_versions(Bucket=bucket)["Versions"][0]["VersionId"]
    assert not can(alice.delete_object, Bucket=bucket, Key="k", VersionId=v)
    out = alice.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": v}]})
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("k", "AccessDenied")]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v)["Body"].read() == b"v"
    out = alice.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert [d["Key"] for d in out["Deleted"]] == ["k"] and "Errors" not in out


def test_get_put_bucket_acl_round_trip(server, s3, alice, bucket):
    owner = server.access_key
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"]["ID"] == owner
    assert grants(acl) == {(owner, "FULL_CONTROL")}
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == {(owner, "FULL_CONTROL"),
                                                        (ALL_USERS, "READ")}
    # A body: what Get answers can be put back, changed.
    policy = s3.get_bucket_acl(Bucket=bucket)
    policy["Grants"] = [g for g in policy["Grants"] if "URI" not in g["Grantee"]] + [
        {"Grantee": {"Type": "CanonicalUser", "ID": ALICE[0]}, "Permission": "READ_ACP"},
        {"Grantee": {"Type": "Group", "URI": AUTH_USERS}, "Permission": "WRITE"},
    ]
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy={
        "Grants": policy["Grants"], "Owner": policy["Owner"]})
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == {
        (owner, "FULL_CONTROL"), (ALICE[0], "READ_ACP"), (AUTH_USERS, "WRITE")}
    assert abilities(alice, bucket) == {"list": False, "write": True, "read_acp": True}
    # Back to private.
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert grants(s3.get_bucket_acl(Bucket=bucket)) == {(owner, "FULL_CONTROL")}
    assert abilities(alice, bucket) == {"list": False, "write": False, "read_acp": False}


def test_grant_headers_by_id_and_group(server, s3, alice, anon, bucket):
    s3.put_bucket_acl(Bucket=bucket, GrantRead=f'uri="{ALL_USERS}"',
                      GrantFullControl=f'id="{ALICE[0]}", id="{server.access_key}"')
    assert abilities(anon, bucket) == {"list": True, "write": False, "read_acp": False}
    assert abilities(alice, bucket) == {"list": True, "write": True, "read_acp": True}
    # FULL_CONTROL includes WRITE_ACP: alice may hand the bucket's ACL back to private.
    alice.put_bucket_acl(Bucket=bucket, ACL="private")
    assert abilities(alice, bucket) == {"list": False, "write": False, "read_acp": False}
    # On CreateBucket too.
    name = f"{bucket}-grants"
    s3.create_bucket(Bucket=name, GrantWrite=f'id="{ALICE[0]}"')
    assert abilities(alice, name) == {"list": False, "write": True, "read_acp": False}


@pytest.mark.parametrize("kw, want", [
    (dict(ACL="public-read", GrantRead=f'uri="{ALL_USERS}"'), ("InvalidRequest", 400)),
    (dict(GrantRead='id="NOSUCHUSERACCESSKEY"'), ("InvalidArgument", 400)),
    (dict(GrantRead='emailAddress="a@example.com"'), ("NotImplemented", 501)),
    (dict(GrantRead='uri="http://example.com/nobody"'), ("InvalidArgument", 400)),
    (dict(GrantRead='nonsense'), ("InvalidArgument", 400)),
    (dict(ACL="log-delivery-write"), ("NotImplemented", 501)),
    (dict(ACL="aws-exec-read"), ("NotImplemented", 501)),
    (dict(ACL="everyone"), ("InvalidArgument", 400)),
])
def test_bad_acls_are_refused(s3, bucket, kw, want):
    for call, args in [(s3.put_bucket_acl, dict(Bucket=bucket)),
                       (s3.create_bucket, dict(Bucket=f"{bucket}-new"))]:
        with pytest.raises(ClientError) as e:
            call(**args, **kw)
        assert (code(e), status(e)) == want, call
    # Nothing was stored: the bucket is private, the new one does not exist.
    assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 1
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=f"{bucket}-new")
    assert status(e) == 404


def test_malformed_acl_bodies(server, s3, bucket):
    owner = {"ID": server.access_key}
    for body, want in [
        ({"Grants": []}, "MalformedACLError"),
        ({"Owner": owner, "Grants": [{"Grantee": {"Type": "CanonicalUser"},
                                      "Permission": "READ"}]}, "MalformedACLError"),
        ({"Owner": owner, "Grants": [{"Grantee": {"Type": "Group", "URI": ALL_USERS},
                                      "Permission": "EVERYTHING"}]}, "MalformedACLError"),
        ({"Owner": owner, "Grants": [{"Grantee": {"Type": "AmazonCustomerByEmail",
                                                  "EmailAddress": "a@example.com"},
                                      "Permission": "READ"}]}, "NotImplemented"),
        ({"Owner": {"ID": ALICE[0]}, "Grants": []}, "AccessDenied"),
    ]:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=body)
        assert code(e) == want, body
    with pytest.raises(ClientError) as e:
        s3.put_bucket_acl(Bucket=bucket)
    assert status(e) == 400


def test_ignore_and_block_public_acls(s3, alice, anon, bucket):
    s3.put_bucket_acl(Bucket=bucket, GrantRead=f'uri="{ALL_USERS}", id="{ALICE[0]}"')
    assert can(anon.list_objects_v2, Bucket=bucket)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "IgnorePublicAcls": True})
    # Stored public grants count for nothing (at once on this gateway); a grant to a user
    # still counts.
    assert not can(anon.list_objects_v2, Bucket=bucket)
    assert can(alice.list_objects_v2, Bucket=bucket)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True})
    assert can(anon.list_objects_v2, Bucket=bucket)
    for kw in [dict(ACL="public-read"), dict(GrantRead=f'uri="{AUTH_USERS}"')]:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_acl(Bucket=bucket, **kw)
        assert code(e) == "AccessDenied" and status(e) == 403
    s3.put_bucket_acl(Bucket=bucket, GrantRead=f'id="{ALICE[0]}"')
    assert not can(anon.list_objects_v2, Bucket=bucket)


def test_deny_in_policy_beats_grant(s3, alice, anon, bucket):
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Deny", {"AWS": "alice"}, "s3:PutObject", f"arn:aws:s3:::{bucket}/*")))
    assert not can(alice.put_object, Bucket=bucket, Key="k", Body=b"x")
    assert can(alice.list_objects_v2, Bucket=bucket)
    assert can(anon.put_object, Bucket=bucket, Key="k", Body=b"x")
    # Deletes through DeleteObjects are judged per key the same way.
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Deny", "*", "s3:DeleteObject", f"arn:aws:s3:::{bucket}/k")))
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    out = alice.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"},
                                                                   {"Key": "other"}]})
    assert [d["Key"] for d in out.get("Deleted", [])] == ["other"]
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("k", "AccessDenied")]


def test_bucket_owner_enforced_disables_acls(s3, alice, bucket):
    s3.put_bucket_acl(Bucket=bucket, GrantRead=f'id="{ALICE[0]}"')
    assert can(alice.list_objects_v2, Bucket=bucket)
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    # The stored grant counts for nothing and is not shown.
    assert not can(alice.list_objects_v2, Bucket=bucket)
    assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 1
    for kw in [dict(ACL="public-read"), dict(GrantRead=f'id="{ALICE[0]}"')]:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_acl(Bucket=bucket, **kw)
        assert code(e) == "AccessControlListNotSupported" and status(e) == 400
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    s3.put_bucket_acl(Bucket=bucket, ACL="bucket-owner-full-control")
    # Deleting the controls enables ACLs again (an ObjectWriter bucket in S3's terms).
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    s3.put_bucket_acl(Bucket=bucket, GrantRead=f'id="{ALICE[0]}"')
    assert can(alice.list_objects_v2, Bucket=bucket)
    # CreateBucket: an ACL together with BucketOwnerEnforced is refused.
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=f"{bucket}-enf", ACL="public-read",
                         ObjectOwnership="BucketOwnerEnforced")
    assert code(e) == "InvalidBucketAclWithObjectOwnership" and status(e) == 400
    s3.create_bucket(Bucket=f"{bucket}-enf", ACL="private", ObjectOwnership="BucketOwnerEnforced")
    # Object ACLs are refused as S3 does in such a bucket; the owner-only ones still go
    # through.
    enf = f"{bucket}-enf"
    for call, kw in [(s3.put_object, dict(Key="k", Body=b"v", ACL="public-read")),
                     (s3.put_object, dict(Key="k", Body=b"v", GrantRead=f'id="{ALICE[0]}"')),
                     (s3.create_multipart_upload, dict(Key="k", ACL="authenticated-read"))]:
        with pytest.raises(ClientError) as e:
            call(Bucket=enf, **kw)
        assert code(e) == "AccessControlListNotSupported" and status(e) == 400, kw
    s3.put_object(Bucket=enf, Key="k", Body=b"v", ACL="bucket-owner-full-control")
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=enf, Key="k", ACL="public-read")
    assert code(e) == "AccessControlListNotSupported"
    s3.put_object_acl(Bucket=enf, Key="k", ACL="private")


def test_acl_calls_need_their_permission(s3, alice, bucket):
    # READ gives no READ_ACP, READ_ACP no WRITE_ACP.
    s3.put_bucket_acl(Bucket=bucket, GrantRead=f'id="{ALICE[0]}"',
                      GrantReadACP=f'id="{ALICE[0]}"')
    assert can(alice.get_bucket_acl, Bucket=bucket)
    assert not can(alice.put_bucket_acl, Bucket=bucket, ACL="public-read")
    s3.put_bucket_acl(Bucket=bucket, GrantWriteACP=f'id="{ALICE[0]}"')
    assert not can(alice.get_bucket_acl, Bucket=bucket)
    alice.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert (ALL_USERS, "READ") in grants(s3.get_bucket_acl(Bucket=bucket))
    # Nobody but the owner touches the bucket policy, whatever the ACL says.
    s3.put_bucket_acl(Bucket=bucket, GrantFullControl=f'id="{ALICE[0]}"')
    assert not can(alice.get_bucket_policy_status, Bucket=bucket)
    assert not can(alice.delete_bucket, Bucket=bucket)


def readers(s3, alice, anon, bucket, key, **kw):
    """Who may GET and HEAD `key` (both must agree): (alice, anonymous)."""
    out = []
    for client in (alice, anon):
        got = can(client.get_object, Bucket=bucket, Key=key, **kw)
        assert got == can(client.head_object, Bucket=bucket, Key=key, **kw), key
        out.append(got)
    return tuple(out)


# (canned ACL, (alice may read, anyone may read))
OBJECT_CANNED = [
    ("private", (False, False)),
    ("public-read", (True, True)),
    ("public-read-write", (True, True)),
    ("authenticated-read", (True, False)),
    ("bucket-owner-read", (False, False)),
    ("bucket-owner-full-control", (False, False)),
]


def test_object_canned_acls(server, s3, alice, anon, bucket):
    for canned, want in OBJECT_CANNED:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL=canned)
        assert readers(s3, alice, anon, bucket, "k") == want, canned
        if want[1]:
            assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
        acl = s3.get_object_acl(Bucket=bucket, Key="k")
        assert acl["Owner"]["ID"] == server.access_key
        extra = {"public-read": {(ALL_USERS, "READ")},
                 "public-read-write": {(ALL_USERS, "READ"), (ALL_USERS, "WRITE")},
                 "authenticated-read": {(AUTH_USERS, "READ")}}.get(canned, set())
        assert grants(acl) == {(server.access_key, "FULL_CONTROL")} | extra, canned
        # READ reads the object, never its ACL, nor writes it.
        assert not can(anon.get_object_acl, Bucket=bucket, Key="k")
        assert not can(alice.put_object_acl, Bucket=bucket, Key="k", ACL="private")
        # A new write of the key starts from its own ACL (private here).
        s3.put_object(Bucket=bucket, Key="k", Body=b"w")
        assert readers(s3, alice, anon, bucket, "k") == (False, False)


def test_object_grants_by_header_and_body(server, s3, alice, anon, bucket):
    owner = server.access_key
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", GrantRead=f'id="{ALICE[0]}"',
                  GrantReadACP=f'id="{ALICE[0]}"', GrantFullControl=f'id="{owner}"')
    assert readers(s3, alice, anon, bucket, "k") == (True, False)
    assert grants(alice.get_object_acl(Bucket=bucket, Key="k")) == {
        (ALICE[0], "READ"), (ALICE[0], "READ_ACP"), (owner, "FULL_CONTROL")}
    assert not can(alice.put_object_acl, Bucket=bucket, Key="k", ACL="public-read")
    # WRITE_ACP lets alice open it to everyone.
    s3.put_object_acl(Bucket=bucket, Key="k", GrantWriteACP=f'id="{ALICE[0]}"')
    assert readers(s3, alice, anon, bucket, "k") == (False, False)
    alice.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert readers(s3, alice, anon, bucket, "k") == (True, True)
    # A body: what Get answers can be put back, changed.
    acl = s3.get_object_acl(Bucket=bucket, Key="k")
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy={
        "Owner": acl["Owner"],
        "Grants": [g for g in acl["Grants"] if "URI" not in g["Grantee"]] + [
            {"Grantee": {"Type": "Group", "URI": AUTH_USERS}, "Permission": "READ"}]})
    assert readers(s3, alice, anon, bucket, "k") == (True, False)
    # Back to the owner's alone.
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert grants(s3.get_object_acl(Bucket=bucket, Key="k")) == {(owner, "FULL_CONTROL")}
    assert readers(s3, alice, anon, bucket, "k") == (False, False)


BAD_OBJECT_ACLS = [
    (dict(ACL="public-read", GrantRead=f'uri="{ALL_USERS}"'), ("InvalidRequest", 400)),
    (dict(GrantRead='id="NOSUCHUSERACCESSKEY"'), ("InvalidArgument", 400)),
    (dict(GrantRead='emailAddress="a@example.com"'), ("NotImplemented", 501)),
    (dict(GrantRead='uri="http://acs.amazonaws.com/groups/s3/LogDelivery"'),
     ("NotImplemented", 501)),
    (dict(ACL="aws-exec-read"), ("NotImplemented", 501)),
    (dict(ACL="everyone"), ("InvalidArgument", 400)),
]


def test_bad_object_acls_are_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    for kw, want in BAD_OBJECT_ACLS:
        for call, args in [(s3.put_object, dict(Key="new", Body=b"v")),
                           (s3.put_object_acl, dict(Key="k")),
                           (s3.copy_object, dict(Key="new", CopySource=f"{bucket}/k")),
                           (s3.create_multipart_upload, dict(Key="new"))]:
            with pytest.raises(ClientError) as e:
                call(Bucket=bucket, **args, **kw)
            assert (code(e), status(e)) == want, (call, kw)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert len(s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]) == 1


def test_object_acl_calls_on_missing_objects(s3, anon, bucket):
    for call, kw in [(s3.get_object_acl, {}), (s3.put_object_acl, dict(ACL="private"))]:
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, Key="missing", **kw)
        assert code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="missing")
    assert status(e) == 400
    # An anonymous caller learns nothing of a key it may not read.
    s3.put_object(Bucket=bucket, Key="open", Body=b"v", ACL="public-read")
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="missing")
    assert status(e) == 403
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="open", VersionId="0" * 24)
    assert status(e) == 403


def test_object_acls_by_version(s3, alice, anon, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1", ACL="public-read")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"2")["VersionId"]
    # Each version has its own ACL: the current one is private, the old one public.
    assert readers(s3, alice, anon, bucket, "k") == (False, False)
    assert readers(s3, alice, anon, bucket, "k", VersionId=v1) == (True, True)
    assert anon.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"1"
    assert (ALL_USERS, "READ") in grants(s3.get_object_acl(Bucket=bucket, Key="k",
                                                           VersionId=v1))
    assert len(s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]) == 1
    # PutObjectAcl of one version leaves the other alone.
    s3.put_object_acl(Bucket=bucket, Key="k", VersionId=v2, ACL="authenticated-read")
    s3.put_object_acl(Bucket=bucket, Key="k", VersionId=v1, ACL="private")
    assert readers(s3, alice, anon, bucket, "k") == (True, False)
    assert readers(s3, alice, anon, bucket, "k", VersionId=v1) == (False, False)
    # The current version is a delete marker: the old versions keep their ACLs.
    s3.delete_object(Bucket=bucket, Key="k")
    with pytest.raises(ClientError) as e:
        s3.get_object_acl(Bucket=bucket, Key="k")
    assert status(e) == 404
    assert readers(s3, alice, anon, bucket, "k", VersionId=v2) == (True, False)
    elsewhere = s3.put_object(Bucket=bucket, Key="other", Body=b"2")["VersionId"]
    for call in (s3.get_object_acl, s3.put_object_acl):
        kw = dict(ACL="private") if call == s3.put_object_acl else {}
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, Key="k", VersionId=elsewhere, **kw)
        assert code(e) == "NoSuchVersion", call


def test_copies_get_their_own_acl(s3, alice, anon, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"v", ACL="public-read")
    # S3 never copies the source's ACL: the copy is private unless the request says.
    s3.copy_object(Bucket=bucket, Key="plain", CopySource=f"{bucket}/src")
    assert readers(s3, alice, anon, bucket, "plain") == (False, False)
    s3.copy_object(Bucket=bucket, Key="shared", CopySource=f"{bucket}/src",
                   GrantRead=f'id="{ALICE[0]}"')
    assert readers(s3, alice, anon, bucket, "shared") == (True, False)
    s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src",
                   MetadataDirective="REPLACE", ACL="authenticated-read")
    assert readers(s3, alice, anon, bucket, "src") == (True, False)


def test_an_object_read_grant_lets_a_writer_copy_it(server, s3, alice, bucket):
    s3.put_bucket_acl(Bucket=bucket, GrantWrite=f'id="{ALICE[0]}"')
    s3.put_object(Bucket=bucket, Key="private", Body=b"p")
    s3.put_object(Bucket=bucket, Key="shared", Body=b"s", GrantRead=f'id="{ALICE[0]}"')
    for call, kw in [(alice.copy_object, {}),
                     (alice.upload_part_copy, dict(PartNumber=1))]:
        if call == alice.upload_part_copy:
            up = alice.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
            kw = dict(kw, UploadId=up)
        assert not can(call, Bucket=bucket, Key="dst", CopySource=f"{bucket}/private", **kw)
        assert can(call, Bucket=bucket, Key="dst", CopySource=f"{bucket}/shared", **kw)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"s"
    # Where writers own objects, the bucket owner copies only what it may read.
    ownership(s3, bucket, "ObjectWriter")
    alice.put_object(Bucket=bucket, Key="alices", Body=b"a")
    assert not can(s3.copy_object, Bucket=bucket, Key="c", CopySource=f"{bucket}/alices")
    alice.put_object_acl(Bucket=bucket, Key="alices", ACL="bucket-owner-read")
    s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/alices")
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"a"


def test_multipart_uploads_get_their_acl_at_complete(s3, alice, anon, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ACL="public-read")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1,
                          Body=b"p" * 10)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert readers(s3, alice, anon, bucket, "mp") == (True, True)
    assert anon.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"p" * 10
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp2",
                                    GrantRead=f'id="{ALICE[0]}"')["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp2", UploadId=up, PartNumber=1,
                          Body=b"q")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp2", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert readers(s3, alice, anon, bucket, "mp2") == (True, False)


def test_post_forms_set_the_acl(server, s3, alice, anon, bucket):
    from test_post_upload import post, sign
    fields = sign(server, [{"bucket": bucket}, ["starts-with", "$key", ""],
                           {"acl": "public-read"}])
    status_, _, body = post(server, bucket, {**fields, "key": "form", "acl": "public-read"},
                            b"posted")
    assert status_ == 204, body
    assert readers(s3, alice, anon, bucket, "form") == (True, True)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True})
    status_, _, body = post(server, bucket, {**fields, "key": "form2", "acl": "public-read"},
                            b"posted")
    assert status_ == 403, body
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["form"]


def test_deny_in_policy_beats_object_grant(s3, alice, anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="other", Body=b"v", ACL="public-read")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Deny", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/k")))
    assert readers(s3, alice, anon, bucket, "k") == (False, False)
    assert readers(s3, alice, anon, bucket, "other") == (True, True)
    s3.put_object_acl(Bucket=bucket, Key="k", GrantReadACP=f'id="{ALICE[0]}"')
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Deny", {"AWS": "alice"}, "s3:GetObjectAcl", f"arn:aws:s3:::{bucket}/*")))
    assert not can(alice.get_object_acl, Bucket=bucket, Key="k")


def test_block_and_ignore_public_acls_on_objects(s3, alice, anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v",
                  GrantRead=f'uri="{ALL_USERS}", id="{ALICE[0]}"')
    assert readers(s3, alice, anon, bucket, "k") == (True, True)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "IgnorePublicAcls": True})
    # Stored public grants count for nothing; a grant to a user still counts.
    assert readers(s3, alice, anon, bucket, "k") == (True, False)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True})
    assert readers(s3, alice, anon, bucket, "k") == (True, True)
    for call, kw in [(s3.put_object, dict(Key="n", Body=b"v", ACL="public-read")),
                     (s3.put_object, dict(Key="n", Body=b"v", GrantRead=f'uri="{AUTH_USERS}"')),
                     (s3.put_object_acl, dict(Key="k", ACL="public-read-write")),
                     (s3.copy_object, dict(Key="n", CopySource=f"{bucket}/k",
                                           ACL="authenticated-read")),
                     (s3.create_multipart_upload, dict(Key="n", ACL="public-read"))]:
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, **kw)
        assert code(e) == "AccessDenied" and status(e) == 403, kw
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    s3.put_object_acl(Bucket=bucket, Key="k", GrantRead=f'id="{ALICE[0]}"')
    assert readers(s3, alice, anon, bucket, "k") == (True, False)


def ownership(s3, bucket, value):
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": value}]})
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": value}]


def test_object_writer_owns_what_it_writes(server, s3, alice, anon, bucket):
    root = server.access_key
    ownership(s3, bucket, "ObjectWriter")
    s3.put_bucket_acl(Bucket=bucket, GrantWrite=f'id="{ALICE[0]}"')
    alice.put_object(Bucket=bucket, Key="mine", Body=b"a")
    acl = alice.get_object_acl(Bucket=bucket, Key="mine")
    assert acl["Owner"]["ID"] == ALICE[0]
    assert grants(acl) == {(ALICE[0], "FULL_CONTROL")}
    assert alice.get_object(Bucket=bucket, Key="mine")["Body"].read() == b"a"
    # The bucket owner gets what the ACL grants it: nothing here.
    for call in (s3.get_object, s3.head_object, s3.get_object_acl):
        assert not can(call, Bucket=bucket, Key="mine"), call
    assert not can(s3.put_object_acl, Bucket=bucket, Key="mine", ACL="private")
    # It may still delete it (S3: the bucket owner pays for and can remove any object).
    alice.put_object(Bucket=bucket, Key="gone", Body=b"a")
    s3.delete_object(Bucket=bucket, Key="gone")
    alice.put_object(Bucket=bucket, Key="shared", Body=b"b", ACL="bucket-owner-full-control")
    acl = s3.get_object_acl(Bucket=bucket, Key="shared")
    assert acl["Owner"]["ID"] == ALICE[0]
    assert grants(acl) == {(ALICE[0], "FULL_CONTROL"), (root, "FULL_CONTROL")}
    assert s3.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"b"
    alice.put_object(Bucket=bucket, Key="read", Body=b"c", ACL="bucket-owner-read")
    assert can(s3.get_object, Bucket=bucket, Key="read")
    assert not can(s3.get_object_acl, Bucket=bucket, Key="read")
    # The owner hands its object over with its ACL; the owner stays.
    alice.put_object_acl(Bucket=bucket, Key="mine", ACL="public-read")
    assert readers(s3, alice, anon, bucket, "mine") == (True, True)
    assert not can(s3.get_object_acl, Bucket=bucket, Key="mine")
    assert alice.get_object_acl(Bucket=bucket, Key="mine")["Owner"]["ID"] == ALICE[0]
    # What the bucket owner writes is its own; anonymous writers own nothing.
    s3.put_object(Bucket=bucket, Key="root", Body=b"r")
    assert s3.get_object_acl(Bucket=bucket, Key="root")["Owner"]["ID"] == root
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    anon.put_object(Bucket=bucket, Key="anon", Body=b"x")
    assert s3.get_object_acl(Bucket=bucket, Key="anon")["Owner"]["ID"] == root
    # Listings show each object's owner.
    want = {"anon": root, "mine": ALICE[0], "read": ALICE[0], "root": root,
            "shared": ALICE[0]}
    v2 = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"]
    assert {o["Key"]: o["Owner"]["ID"] for o in v2} == want
    assert all("Owner" not in o for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    v1 = s3.list_objects(Bucket=bucket)["Contents"]
    assert {o["Key"]: o["Owner"]["ID"] for o in v1} == want
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert {v["Key"]: v["Owner"]["ID"] for v in versions} == want
    # In a bucket keeping versions too, each version with its own owner.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="mine", Body=b"taken")
    versions = s3.list_object_versions(Bucket=bucket, Prefix="mine")["Versions"]
    assert [v["Owner"]["ID"] for v in versions] == [root, ALICE[0]]
    v2 = s3.list_objects_v2(Bucket=bucket, Prefix="mine", FetchOwner=True)["Contents"]
    assert [o["Owner"]["ID"] for o in v2] == [root]
    # BucketOwnerEnforced: the bucket owner owns everything, and has every right.
    ownership(s3, bucket, "BucketOwnerEnforced")
    assert s3.get_object(Bucket=bucket, Key="read")["Body"].read() == b"c"
    assert s3.get_object_acl(Bucket=bucket, Key="read")["Owner"]["ID"] == root
    v2 = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"]
    assert {o["Owner"]["ID"] for o in v2} == {root}
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert {v["Owner"]["ID"] for v in versions} == {root}
    assert not can(alice.get_object, Bucket=bucket, Key="read")


def test_bucket_owner_preferred(server, s3, alice, bucket):
    root = server.access_key
    ownership(s3, bucket, "BucketOwnerPreferred")
    s3.put_bucket_acl(Bucket=bucket, GrantWrite=f'id="{ALICE[0]}"')
    alice.put_object(Bucket=bucket, Key="given", Body=b"a", ACL="bucket-owner-full-control")
    acl = s3.get_object_acl(Bucket=bucket, Key="given")
    assert acl["Owner"]["ID"] == root and grants(acl) == {(root, "FULL_CONTROL")}
    assert not can(alice.get_object, Bucket=bucket, Key="given")
    alice.put_object(Bucket=bucket, Key="kept", Body=b"b")
    assert alice.get_object_acl(Bucket=bucket, Key="kept")["Owner"]["ID"] == ALICE[0]
    assert not can(s3.get_object, Bucket=bucket, Key="kept")
    # In parts and by copy too.
    up = alice.create_multipart_upload(Bucket=bucket, Key="mp",
                                       ACL="bucket-owner-full-control")["UploadId"]
    etag = alice.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1,
                             Body=b"p")["ETag"]
    alice.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object_acl(Bucket=bucket, Key="mp")["Owner"]["ID"] == root
    # Back to no controls: what was written keeps its owner; new writes are the bucket's.
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    alice.put_object(Bucket=bucket, Key="later", Body=b"c")
    assert s3.get_object_acl(Bucket=bucket, Key="later")["Owner"]["ID"] == root
    assert not can(alice.get_object, Bucket=bucket, Key="later")


def test_create_bucket_with_each_ownership(s3, alice, bucket):
    for value in ["ObjectWriter", "BucketOwnerPreferred", "BucketOwnerEnforced"]:
        name = f"{bucket}-{value.lower()}"
        s3.create_bucket(Bucket=name, ObjectOwnership=value)
        rules = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"]
        assert rules == [{"ObjectOwnership": value}]
    # An ACL on CreateBucket goes with the two that keep ACLs enabled.
    s3.create_bucket(Bucket=f"{bucket}-w", ObjectOwnership="ObjectWriter",
                     GrantRead=f'id="{ALICE[0]}"')
    assert can(alice.list_objects_v2, Bucket=f"{bucket}-w")


def test_object_acls_in_an_enforced_bucket_count_for_nothing(s3, anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="public-read")
    assert can(anon.get_object, Bucket=bucket, Key="k")
    ownership(s3, bucket, "BucketOwnerEnforced")
    assert not can(anon.get_object, Bucket=bucket, Key="k")
    assert len(s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]) == 1


def test_a_grantee_that_may_list_sees_404_for_missing_keys(s3, anon, bucket):
    # A policy lets anyone read objects; the ACL lets anyone list: a missing key is 404, as
    # for the owner (without the listing grant it would be 403).
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        stmt("Allow", "*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*")))
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="missing")
    assert status(e) == 403
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="missing")
    assert status(e) == 404


def test_a_recreated_bucket_starts_private(s3, anon, bucket):
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    assert can(anon.list_objects_v2, Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    assert not can(anon.list_objects_v2, Bucket=bucket)
    assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 1


def test_anonymous_browser_post_where_the_acl_allows_writes(server, s3, bucket):
    from test_post_upload import code_of, post
    status_, _, body = post(server, bucket, {"key": "drop/a.txt"}, b"anon")
    assert (status_, code_of(body)) == (403, "AccessDenied"), body
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    status_, _, body = post(server, bucket, {"key": "drop/a.txt"}, b"anon")
    assert status_ == 204, body
    assert s3.get_object(Bucket=bucket, Key="drop/a.txt")["Body"].read() == b"anon"


def test_acls_survive_a_restart(tmp_path):
    from conftest import Server, anon_client
    server = Server(str(tmp_path / "d"))
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="kept", ACL="public-read")
        s3.put_object(Bucket="kept", Key="k", Body=b"v")
        s3.put_object(Bucket="kept", Key="open", Body=b"o", ACL="public-read")
    finally:
        assert server.stop() == 0
    server = Server(str(tmp_path / "d"))
    try:
        listed = anon_client(server).list_objects_v2(Bucket="kept")
        assert [o["Key"] for o in listed["Contents"]] == ["k", "open"]
        assert (ALL_USERS, "READ") in grants(server.client().get_bucket_acl(Bucket="kept"))
        assert anon_client(server).get_object(Bucket="kept", Key="open")["Body"].read() == b"o"
        assert not can(anon_client(server).get_object, Bucket="kept", Key="k")
    finally:
        assert server.stop() == 0


def test_a_writer_cannot_lock_the_owners_objects(server, s3, alice, anon):
    # Retention and legal holds need their own permissions, which no ACL grants: a writer
    # let in by public-read-write must not fill the bucket with versions nobody may delete.
    import datetime
    name = "acl-lock-bucket"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True, ACL="public-read-write")
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    for client in (alice, anon):
        for kw in [dict(ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until),
                   dict(ObjectLockLegalHoldStatus="ON")]:
            assert not can(client.put_object, Bucket=name, Key="k", Body=b"v", **kw)
            assert not can(client.create_multipart_upload, Bucket=name, Key="k", **kw)
        assert can(client.put_object, Bucket=name, Key="k", Body=b"v")
    # A policy may grant them.
    s3.put_bucket_policy(Bucket=name, Policy=doc(stmt(
        "Allow", {"AWS": "alice"}, "s3:PutObjectLegalHold", f"arn:aws:s3:::{name}/*")))
    v = alice.put_object(Bucket=name, Key="held", Body=b"v",
                         ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_legal_hold(Bucket=name, Key="held", VersionId=v)["LegalHold"] == {
        "Status": "ON"}
    s3.put_object_legal_hold(Bucket=name, Key="held", VersionId=v, LegalHold={"Status": "OFF"})
    assert not can(alice.put_object, Bucket=name, Key="k", Body=b"v",
                   ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)
