"""Bucket ACLs: each canned ACL decides who may list, write and read or change the ACL; grants
by id and by group in headers and bodies; Get/PutBucketAcl round trips; the public access
block (BlockPublicAcls, IgnorePublicAcls); a Deny in the bucket policy beats a grant;
BucketOwnerEnforced disables ACLs. Objects have no ACLs of their own: GetObjectAcl shows the
owner-only one, object grants answer NotImplemented."""
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
    # Object ACLs, refused anyway (NotImplemented), are refused as S3 does in such a bucket;
    # the owner-only ones still go through.
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


def test_object_acls(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    acl = s3.get_object_acl(Bucket=bucket, Key="k")
    assert grants(acl) == {(server.access_key, "FULL_CONTROL")}
    with pytest.raises(ClientError) as e:
        s3.get_object_acl(Bucket=bucket, Key="missing")
    assert code(e) == "NoSuchKey"
    for kw in [dict(ACL="public-read"), dict(GrantRead=f'id="{ALICE[0]}"')]:
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="k2", Body=b"v", **kw)
        assert code(e) == "NotImplemented", kw
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k2")
    assert status(e) == 404
    # The ACL every object has is accepted as a no-op, on an object that exists; any other
    # answers NotImplemented.
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="bucket-owner-full-control")
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy={
        "Owner": acl["Owner"], "Grants": acl["Grants"]})
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="missing", ACL="private")
    assert code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="k", ACL="authenticated-read")
    assert code(e) == "NotImplemented"
    with pytest.raises(ClientError) as e:
        s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy={
            "Owner": acl["Owner"], "Grants": acl["Grants"] + [
                {"Grantee": {"Type": "CanonicalUser", "ID": ALICE[0]}, "Permission": "READ"}]})
    assert code(e) == "NotImplemented"
    assert grants(s3.get_object_acl(Bucket=bucket, Key="k")) == {
        (server.access_key, "FULL_CONTROL")}


def test_object_acls_by_version(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="k")
    assert len(s3.get_object_acl(Bucket=bucket, Key="k", VersionId=v1)["Grants"]) == 1
    s3.put_object_acl(Bucket=bucket, Key="k", VersionId=v1, ACL="private")
    # The current version is a delete marker; an unknown version is NoSuchVersion.
    with pytest.raises(ClientError) as e:
        s3.get_object_acl(Bucket=bucket, Key="k")
    assert status(e) == 404
    elsewhere = s3.put_object(Bucket=bucket, Key="other", Body=b"2")["VersionId"]
    for call in (s3.get_object_acl, s3.put_object_acl):
        kw = dict(ACL="private") if call == s3.put_object_acl else {}
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, Key="k", VersionId=elsewhere, **kw)
        assert code(e) == "NoSuchVersion", call


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
    finally:
        assert server.stop() == 0
    server = Server(str(tmp_path / "d"))
    try:
        listed = anon_client(server).list_objects_v2(Bucket="kept")
        assert [o["Key"] for o in listed["Contents"]] == ["k"]
        assert (ALL_USERS, "READ") in grants(server.client().get_bucket_acl(Bucket="kept"))
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
