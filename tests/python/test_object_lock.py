"""S3 Object Lock against a real `percore serve`, as AWS documents it: buckets created with
lock (versioning Enabled for good), Put/GetObjectLockConfiguration with default retention,
retention (GOVERNANCE, COMPLIANCE) and legal holds from PUT, copy and multipart headers and
from Put/GetObjectRetention and Put/GetObjectLegalHold, and the deletes and retention changes
S3 refuses, as tables: mode x bypass x caller (owner, another user with or without
s3:BypassGovernanceRetention) x legal hold -> expected answer. The lifecycle worker's
noncurrent expiration leaves a locked version in place (test clock: a lifecycle day is one
second)."""
import datetime
import json
import os
import shutil
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Server

ALICE = ("ALICEACCESSKEY000001", "alice-secret-key-0000000000000000000001")
UTC = datetime.timezone.utc


def later(seconds=3600):
    return datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds)


def err(call):
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


_n = [0]


def new_bucket(s3, lock=True):
    _n[0] += 1
    name = f"lock-{os.getpid()}-{_n[0]}"
    if lock:
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def alice(server):
    return server.client(*ALICE)


@pytest.fixture
def locked(s3):
    return new_bucket(s3)


def policy_for_alice(bucket, bypass, owner_denied=False):
    actions = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject",
               "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:GetObjectRetention",
               "s3:PutObjectLegalHold", "s3:GetObjectLegalHold", "s3:ListBucket",
               "s3:ListBucketVersions"]
    if bypass:
        actions.append("s3:BypassGovernanceRetention")
    statements = [{"Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": actions,
                   "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]
    if owner_denied:
        statements.append({"Effect": "Deny", "Principal": "*",
                           "Action": "s3:BypassGovernanceRetention",
                           "Resource": f"arn:aws:s3:::{bucket}/*"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def versions(s3, bucket, key):
    r = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v["VersionId"] for v in r.get("Versions", []) if v["Key"] == key]


# --- Buckets and their configuration -------------------------------------------------------

def test_bucket_created_with_lock_is_versioned_for_good(s3, locked):
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    cfg = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert cfg == {"ObjectLockEnabled": "Enabled"}
    assert err(lambda: s3.put_bucket_versioning(
        Bucket=locked, VersioningConfiguration={"Status": "Suspended"})) == \
        ("InvalidBucketState", 409)
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    # Enabled again is no change: accepted.
    s3.put_bucket_versioning(Bucket=locked, VersioningConfiguration={"Status": "Enabled"})


def test_default_retention_configuration(s3, locked):
    for rule in [{"Mode": "GOVERNANCE", "Days": 2}, {"Mode": "COMPLIANCE", "Years": 1}]:
        s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": rule}})
        cfg = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
        assert cfg == {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": rule}}
    # Without a rule: no default retention any more.
    s3.put_object_lock_configuration(
        Bucket=locked, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    assert s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"] == \
        {"ObjectLockEnabled": "Enabled"}


BAD_RULES = [
    ({"Mode": "GOVERNANCE", "Days": 1, "Years": 1}, "MalformedXML"),
    ({"Mode": "GOVERNANCE"}, "MalformedXML"),
    ({"Days": 1}, "MalformedXML"),
    ({"Mode": "FOREVER", "Days": 1}, "MalformedXML"),
    ({"Mode": "GOVERNANCE", "Days": 0}, "InvalidArgument"),
    ({"Mode": "COMPLIANCE", "Days": -3}, "InvalidArgument"),
    ({"Mode": "COMPLIANCE", "Years": 0}, "InvalidArgument"),
    ({"Mode": "COMPLIANCE", "Years": 101}, "InvalidArgument"),
]


@pytest.mark.parametrize("rule,code", BAD_RULES)
def test_bad_default_retention_is_refused(s3, locked, rule, code):
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE",
                                                                      "Days": 5}}})
    assert err(lambda: s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": rule}})) == (code, 400)
    # The stored configuration is unchanged.
    cfg = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert cfg["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 5}


def test_lock_on_an_existing_bucket_needs_versioning(s3):
    plain = new_bucket(s3, lock=False)
    assert err(lambda: s3.get_object_lock_configuration(Bucket=plain)) == \
        ("ObjectLockConfigurationNotFoundError", 404)
    enable = {"ObjectLockEnabled": "Enabled"}
    assert err(lambda: s3.put_object_lock_configuration(
        Bucket=plain, ObjectLockConfiguration=enable)) == ("InvalidBucketState", 409)
    s3.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Suspended"})
    assert err(lambda: s3.put_object_lock_configuration(
        Bucket=plain, ObjectLockConfiguration=enable)) == ("InvalidBucketState", 409)
    s3.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=plain, ObjectLockConfiguration=enable)
    assert s3.get_object_lock_configuration(Bucket=plain)["ObjectLockConfiguration"] == enable
    assert err(lambda: s3.put_bucket_versioning(
        Bucket=plain, VersioningConfiguration={"Status": "Suspended"}))[0] == "InvalidBucketState"
    s3.put_object(Bucket=plain, Key="k", Body=b"v", ObjectLockMode="GOVERNANCE",
                  ObjectLockRetainUntilDate=later())
    vid = versions(s3, plain, "k")[0]
    assert err(lambda: s3.delete_object(Bucket=plain, Key="k", VersionId=vid))[0] == \
        "AccessDenied"


# --- Lock state of a version -----------------------------------------------------------------

def test_lock_headers_need_a_lock_bucket_and_store_nothing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"s")
    for extra in [dict(ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=later()),
                  dict(ObjectLockLegalHoldStatus="ON")]:
        assert err(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"v", **extra)) == \
            ("InvalidRequest", 400)
        assert err(lambda: s3.create_multipart_upload(Bucket=bucket, Key="k", **extra)) == \
            ("InvalidRequest", 400)
        assert err(lambda: s3.copy_object(Bucket=bucket, Key="k", **extra, CopySource={
            "Bucket": bucket, "Key": "src"})) == ("InvalidRequest", 400)
    assert err(lambda: s3.head_object(Bucket=bucket, Key="k"))[1] == 404
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    for call in [lambda: s3.put_object_retention(Bucket=bucket, Key="src", Retention={
                     "Mode": "GOVERNANCE", "RetainUntilDate": later()}),
                 lambda: s3.put_object_legal_hold(Bucket=bucket, Key="src",
                                                  LegalHold={"Status": "ON"}),
                 lambda: s3.get_object_retention(Bucket=bucket, Key="src"),
                 lambda: s3.get_object_legal_hold(Bucket=bucket, Key="src")]:
        assert err(call) == ("InvalidRequest", 400)
    s3.delete_object(Bucket=bucket, Key="src")


@pytest.mark.parametrize("extra", [
    dict(ObjectLockMode="GOVERNANCE"),
    dict(ObjectLockRetainUntilDate=later()),
    dict(ObjectLockMode="COMPLIANCE",
         ObjectLockRetainUntilDate=datetime.datetime(2020, 1, 1, tzinfo=UTC)),
    dict(ObjectLockMode="FOREVER", ObjectLockRetainUntilDate=later()),
    dict(ObjectLockLegalHoldStatus="MAYBE"),
], ids=["mode-alone", "date-alone", "date-past", "mode-unknown", "hold-unknown"])
def test_bad_lock_headers_are_invalid_arguments(s3, locked, extra):
    assert err(lambda: s3.put_object(Bucket=locked, Key="k", Body=b"v", **extra)) == \
        ("InvalidArgument", 400)
    assert versions(s3, locked, "k") == []


def test_put_headers_set_retention_and_hold(s3, locked):
    until = later().replace(microsecond=0)
    vid = s3.put_object(Bucket=locked, Key="k", Body=b"v", ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=until,
                        ObjectLockLegalHoldStatus="ON")["VersionId"]
    r = s3.get_object_retention(Bucket=locked, Key="k")["Retention"]
    assert r == {"Mode": "COMPLIANCE", "RetainUntilDate": until}
    assert s3.get_object_legal_hold(Bucket=locked, Key="k", VersionId=vid)["LegalHold"] == \
        {"Status": "ON"}
    head = s3.head_object(Bucket=locked, Key="k")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == until
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    got = s3.get_object(Bucket=locked, Key="k")
    assert (got["ObjectLockMode"], got["ObjectLockLegalHoldStatus"]) == ("COMPLIANCE", "ON")
    # A PUT over the key adds a version; the locked one stays, locked.
    s3.put_object(Bucket=locked, Key="k", Body=b"v2")
    assert len(versions(s3, locked, "k")) == 2
    assert s3.get_object_retention(Bucket=locked, Key="k", VersionId=vid)["Retention"][
        "Mode"] == "COMPLIANCE"
    assert err(lambda: s3.get_object_retention(Bucket=locked, Key="k")) == \
        ("NoSuchObjectLockConfiguration", 404)
    assert err(lambda: s3.get_object_legal_hold(Bucket=locked, Key="k")) == \
        ("NoSuchObjectLockConfiguration", 404)


@pytest.mark.parametrize("granted,shows_mode,shows_hold", [
    ([], False, False),
    (["s3:GetObjectRetention"], True, False),
    (["s3:GetObjectLegalHold"], False, True),
    (["s3:GetObjectRetention", "s3:GetObjectLegalHold"], True, True),
])
def test_lock_headers_are_shown_to_callers_allowed_to_read_them(s3, alice, granted, shows_mode,
                                                                 shows_hold):
    b = new_bucket(s3)
    s3.put_bucket_policy(Bucket=b, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "alice"},
         "Action": ["s3:GetObject", *granted], "Resource": f"arn:aws:s3:::{b}/*"}]}))
    s3.put_object(Bucket=b, Key="k", Body=b"v", ObjectLockMode="GOVERNANCE",
                  ObjectLockRetainUntilDate=later(), ObjectLockLegalHoldStatus="ON")
    for r in [alice.head_object(Bucket=b, Key="k"), alice.get_object(Bucket=b, Key="k")]:
        assert ("ObjectLockMode" in r) == shows_mode
        assert ("ObjectLockRetainUntilDate" in r) == shows_mode
        assert ("ObjectLockLegalHoldStatus" in r) == shows_hold
    owner = s3.head_object(Bucket=b, Key="k")
    assert (owner["ObjectLockMode"], owner["ObjectLockLegalHoldStatus"]) == ("GOVERNANCE", "ON")

def test_default_retention_applies_unless_headers_say_otherwise(s3, locked):
    s3.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    before = datetime.datetime.now(UTC)
    s3.put_object(Bucket=locked, Key="d", Body=b"v")
    r = s3.get_object_retention(Bucket=locked, Key="d")["Retention"]
    assert r["Mode"] == "GOVERNANCE"
    day = datetime.timedelta(days=1)
    assert before + day - datetime.timedelta(seconds=5) <= r["RetainUntilDate"] <= \
        datetime.datetime.now(UTC) + day + datetime.timedelta(seconds=5)
    until = later(7200).replace(microsecond=0)
    s3.put_object(Bucket=locked, Key="e", Body=b"v", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=until)
    assert s3.get_object_retention(Bucket=locked, Key="e")["Retention"] == \
        {"Mode": "COMPLIANCE", "RetainUntilDate": until}
    # A legal hold alone still gets the default retention.
    s3.put_object(Bucket=locked, Key="f", Body=b"v", ObjectLockLegalHoldStatus="OFF")
    assert s3.get_object_retention(Bucket=locked, Key="f")["Retention"]["Mode"] == "GOVERNANCE"
    assert s3.get_object_legal_hold(Bucket=locked, Key="f")["LegalHold"]["Status"] == "OFF"


def test_multipart_upload_carries_its_lock_to_the_object(s3, locked):
    until = later().replace(microsecond=0)
    up = s3.create_multipart_upload(Bucket=locked, Key="mp", ObjectLockMode="COMPLIANCE",
                                    ObjectLockRetainUntilDate=until,
                                    ObjectLockLegalHoldStatus="ON")["UploadId"]
    part = s3.upload_part(Bucket=locked, Key="mp", UploadId=up, PartNumber=1,
                          Body=b"x" * (5 << 20))
    done = s3.complete_multipart_upload(Bucket=locked, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    vid = done["VersionId"]
    assert s3.get_object_retention(Bucket=locked, Key="mp")["Retention"] == \
        {"Mode": "COMPLIANCE", "RetainUntilDate": until}
    assert s3.get_object_legal_hold(Bucket=locked, Key="mp")["LegalHold"] == {"Status": "ON"}
    assert err(lambda: s3.delete_object(Bucket=locked, Key="mp", VersionId=vid,
                                        BypassGovernanceRetention=True))[0] == "AccessDenied"
    assert s3.get_object(Bucket=locked, Key="mp")["ContentLength"] == 5 << 20


def test_copy_gets_the_requests_lock_not_the_sources(s3, locked):
    s3.put_object(Bucket=locked, Key="src", Body=b"source", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=later())
    src = {"Bucket": locked, "Key": "src"}
    s3.copy_object(Bucket=locked, Key="plain-copy", CopySource=src)
    assert err(lambda: s3.get_object_retention(Bucket=locked, Key="plain-copy")) == \
        ("NoSuchObjectLockConfiguration", 404)
    until = later(900).replace(microsecond=0)
    vid = s3.copy_object(Bucket=locked, Key="locked-copy", CopySource=src,
                         ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until,
                         ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_retention(Bucket=locked, Key="locked-copy")["Retention"] == \
        {"Mode": "GOVERNANCE", "RetainUntilDate": until}
    assert s3.get_object_legal_hold(Bucket=locked, Key="locked-copy")["LegalHold"] == \
        {"Status": "ON"}
    assert err(lambda: s3.delete_object(Bucket=locked, Key="locked-copy", VersionId=vid))[0] \
        == "AccessDenied"
    assert s3.get_object(Bucket=locked, Key="locked-copy")["Body"].read() == b"source"


# --- Deletes, as S3 answers them ---------------------------------------------------------------

# (retention mode or None, legal hold, caller, bypass asked, expected: None = deleted)
DELETE_TABLE = [
    (None, False, "owner", False, None),
    (None, True, "owner", False, "AccessDenied"),
    (None, True, "owner", True, "AccessDenied"),
    ("GOVERNANCE", False, "owner", False, "AccessDenied"),
    ("GOVERNANCE", False, "owner", True, None),
    ("GOVERNANCE", False, "owner-denied", True, "AccessDenied"),
    ("GOVERNANCE", False, "alice", True, "AccessDenied"),
    ("GOVERNANCE", False, "alice-bypass", False, "AccessDenied"),
    ("GOVERNANCE", False, "alice-bypass", True, None),
    ("GOVERNANCE", True, "owner", True, "AccessDenied"),
    ("GOVERNANCE", True, "alice-bypass", True, "AccessDenied"),
    ("COMPLIANCE", False, "owner", False, "AccessDenied"),
    ("COMPLIANCE", False, "owner", True, "AccessDenied"),
    ("COMPLIANCE", False, "alice-bypass", True, "AccessDenied"),
    ("COMPLIANCE", True, "owner", True, "AccessDenied"),
]


def setup_version(s3, mode, hold, caller):
    b = new_bucket(s3)
    if caller != "owner":
        s3.put_bucket_policy(Bucket=b, Policy=policy_for_alice(
            b, bypass=caller == "alice-bypass", owner_denied=caller == "owner-denied"))
    extra = {}
    if mode:
        extra.update(ObjectLockMode=mode, ObjectLockRetainUntilDate=later())
    if hold:
        extra.update(ObjectLockLegalHoldStatus="ON")
    vid = s3.put_object(Bucket=b, Key="k", Body=b"v", **extra)["VersionId"]
    return b, vid


def ids(table):
    return ["-".join(str(x) for x in row) for row in table]


@pytest.mark.parametrize("mode,hold,caller,bypass,expected", DELETE_TABLE,
                         ids=ids(DELETE_TABLE))
def test_delete_version_table(s3, alice, mode, hold, caller, bypass, expected):
    b, vid = setup_version(s3, mode, hold, caller)
    client = alice if caller.startswith("alice") else s3
    args = dict(Bucket=b, Key="k", VersionId=vid)
    if bypass:
        args["BypassGovernanceRetention"] = True
    if expected is None:
        client.delete_object(**args)
        assert versions(s3, b, "k") == []
    else:
        assert err(lambda: client.delete_object(**args)) == (expected, 403)
        assert versions(s3, b, "k") == [vid]
        assert s3.get_object(Bucket=b, Key="k", VersionId=vid)["Body"].read() == b"v"


@pytest.mark.parametrize("mode,hold,caller,bypass,expected", DELETE_TABLE,
                         ids=ids(DELETE_TABLE))
def test_delete_objects_table(s3, alice, mode, hold, caller, bypass, expected):
    b, vid = setup_version(s3, mode, hold, caller)
    free = s3.put_object(Bucket=b, Key="free", Body=b"f")["VersionId"]
    client = alice if caller.startswith("alice") else s3
    args = dict(Bucket=b, Delete={"Objects": [{"Key": "k", "VersionId": vid},
                                              {"Key": "free", "VersionId": free}]})
    if bypass:
        args["BypassGovernanceRetention"] = True
    r = client.delete_objects(**args)
    deleted = {d["Key"] for d in r.get("Deleted", [])}
    errors = {e["Key"]: e["Code"] for e in r.get("Errors", [])}
    assert "free" in deleted
    if expected is None:
        assert "k" in deleted and versions(s3, b, "k") == []
    else:
        assert errors == {"k": expected}
        assert versions(s3, b, "k") == [vid]


def test_delete_without_version_adds_a_marker(s3, locked):
    vid = s3.put_object(Bucket=locked, Key="k", Body=b"v", ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=later())["VersionId"]
    r = s3.delete_object(Bucket=locked, Key="k")
    assert r["DeleteMarker"] is True
    assert err(lambda: s3.get_object(Bucket=locked, Key="k"))[1] == 404
    assert s3.get_object(Bucket=locked, Key="k", VersionId=vid)["Body"].read() == b"v"
    # The marker itself is no locked version: it goes, and the object is back.
    s3.delete_object(Bucket=locked, Key="k", VersionId=r["VersionId"])
    assert s3.get_object(Bucket=locked, Key="k")["Body"].read() == b"v"
    assert err(lambda: s3.delete_bucket(Bucket=locked)) == ("BucketNotEmpty", 409)


def test_expired_retention_no_longer_protects(s3, locked):
    vid = s3.put_object(Bucket=locked, Key="k", Body=b"v", ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=later(2))["VersionId"]
    assert err(lambda: s3.delete_object(Bucket=locked, Key="k", VersionId=vid))[0] == \
        "AccessDenied"
    time.sleep(3)
    s3.delete_object(Bucket=locked, Key="k", VersionId=vid)
    assert versions(s3, locked, "k") == []


# --- Retention changes -------------------------------------------------------------------------

# (mode now, new mode or None to remove, new date relative to the current one (+/- s),
#  caller, bypass asked, expected: None = changed)
RETENTION_TABLE = [
    ("COMPLIANCE", "COMPLIANCE", +600, "owner", False, None),
    ("COMPLIANCE", "COMPLIANCE", -600, "owner", True, "AccessDenied"),
    ("COMPLIANCE", "GOVERNANCE", +600, "owner", True, "AccessDenied"),
    ("COMPLIANCE", None, 0, "owner", True, "AccessDenied"),
    ("COMPLIANCE", "COMPLIANCE", -600, "alice-bypass", True, "AccessDenied"),
    ("GOVERNANCE", "GOVERNANCE", +600, "owner", False, None),
    ("GOVERNANCE", "GOVERNANCE", -600, "owner", False, "AccessDenied"),
    ("GOVERNANCE", "GOVERNANCE", -600, "owner", True, None),
    ("GOVERNANCE", None, 0, "owner", False, "AccessDenied"),
    ("GOVERNANCE", None, 0, "owner", True, None),
    ("GOVERNANCE", "COMPLIANCE", +600, "owner", False, "AccessDenied"),
    ("GOVERNANCE", "COMPLIANCE", +600, "owner", True, None),
    ("GOVERNANCE", "GOVERNANCE", -600, "owner-denied", True, "AccessDenied"),
    ("GOVERNANCE", "GOVERNANCE", -600, "alice", True, "AccessDenied"),
    ("GOVERNANCE", "GOVERNANCE", -600, "alice-bypass", False, "AccessDenied"),
    ("GOVERNANCE", "GOVERNANCE", -600, "alice-bypass", True, None),
    ("GOVERNANCE", "GOVERNANCE", +600, "alice", False, None),
]


@pytest.mark.parametrize("mode,new_mode,delta,caller,bypass,expected", RETENTION_TABLE,
                         ids=ids(RETENTION_TABLE))
def test_retention_change_table(s3, alice, mode, new_mode, delta, caller, bypass, expected):
    b = new_bucket(s3)
    if caller != "owner":
        s3.put_bucket_policy(Bucket=b, Policy=policy_for_alice(
            b, bypass=caller == "alice-bypass", owner_denied=caller == "owner-denied"))
    until = later(3600).replace(microsecond=0)
    vid = s3.put_object(Bucket=b, Key="k", Body=b"v", ObjectLockMode=mode,
                        ObjectLockRetainUntilDate=until)["VersionId"]
    client = alice if caller.startswith("alice") else s3
    retention = {}
    if new_mode:
        retention = {"Mode": new_mode,
                     "RetainUntilDate": until + datetime.timedelta(seconds=delta)}
    args = dict(Bucket=b, Key="k", VersionId=vid, Retention=retention)
    if bypass:
        args["BypassGovernanceRetention"] = True
    if expected is None:
        client.put_object_retention(**args)
        if new_mode:
            assert s3.get_object_retention(Bucket=b, Key="k")["Retention"] == retention
        else:
            assert err(lambda: s3.get_object_retention(Bucket=b, Key="k")) == \
                ("NoSuchObjectLockConfiguration", 404)
            s3.delete_object(Bucket=b, Key="k", VersionId=vid)
    else:
        assert err(lambda: client.put_object_retention(**args)) == (expected, 403)
        assert s3.get_object_retention(Bucket=b, Key="k")["Retention"] == \
            {"Mode": mode, "RetainUntilDate": until}


def test_retention_put_checks_its_body(s3, locked):
    s3.put_object(Bucket=locked, Key="k", Body=b"v")
    past = datetime.datetime(2020, 1, 1, tzinfo=UTC)
    assert err(lambda: s3.put_object_retention(Bucket=locked, Key="k", Retention={
        "Mode": "GOVERNANCE", "RetainUntilDate": past})) == ("InvalidArgument", 400)
    assert err(lambda: s3.put_object_retention(Bucket=locked, Key="k", Retention={
        "Mode": "GOVERNANCE"}))[0] == "MalformedXML"
    assert err(lambda: s3.put_object_retention(Bucket=locked, Key="nope", Retention={
        "Mode": "GOVERNANCE", "RetainUntilDate": later()}))[1] == 404
    assert err(lambda: s3.get_object_retention(Bucket=locked, Key="k")) == \
        ("NoSuchObjectLockConfiguration", 404)


# --- Legal holds --------------------------------------------------------------------------------

def test_legal_hold_on_and_off_by_version(s3, locked):
    old = s3.put_object(Bucket=locked, Key="k", Body=b"old")["VersionId"]
    new = s3.put_object(Bucket=locked, Key="k", Body=b"new")["VersionId"]
    assert err(lambda: s3.get_object_legal_hold(Bucket=locked, Key="k", VersionId=old)) == \
        ("NoSuchObjectLockConfiguration", 404)
    s3.put_object_legal_hold(Bucket=locked, Key="k", VersionId=old, LegalHold={"Status": "ON"})
    assert s3.get_object_legal_hold(Bucket=locked, Key="k", VersionId=old)["LegalHold"] == \
        {"Status": "ON"}
    # The current version is another one, untouched.
    assert err(lambda: s3.get_object_legal_hold(Bucket=locked, Key="k"))[0] == \
        "NoSuchObjectLockConfiguration"
    assert err(lambda: s3.delete_object(Bucket=locked, Key="k", VersionId=old,
                                        BypassGovernanceRetention=True)) == ("AccessDenied", 403)
    s3.delete_object(Bucket=locked, Key="k", VersionId=new)
    # The held version is current again, still held.
    assert s3.get_object_legal_hold(Bucket=locked, Key="k")["LegalHold"] == {"Status": "ON"}
    assert err(lambda: s3.delete_object(Bucket=locked, Key="k", VersionId=old))[0] == \
        "AccessDenied"
    s3.put_object_legal_hold(Bucket=locked, Key="k", LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=locked, Key="k", VersionId=old)["LegalHold"] == \
        {"Status": "OFF"}
    s3.delete_object(Bucket=locked, Key="k", VersionId=old)
    assert versions(s3, locked, "k") == []


# --- The lifecycle worker ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fast_days(tmp_path_factory):
    base = tmp_path_factory.mktemp("lock-lifecycle")
    s = Server(str(base / "d"), extra=("--lifecycle-day-secs", "1"))
    yield s
    assert s.stop() == 0
    shutil.rmtree(base, ignore_errors=True)


def test_noncurrent_expiration_leaves_locked_versions(fast_days):
    c = fast_days.client()
    b = new_bucket(c)
    kept = c.put_object(Bucket=b, Key="doc", Body=b"v0", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=later())["VersionId"]
    held = c.put_object(Bucket=b, Key="doc", Body=b"v1",
                        ObjectLockLegalHoldStatus="ON")["VersionId"]
    free = c.put_object(Bucket=b, Key="doc", Body=b"v2")["VersionId"]
    current = c.put_object(Bucket=b, Key="doc", Body=b"v3")["VersionId"]
    c.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        {"ID": "old", "Filter": {"Prefix": "doc"}, "Status": "Enabled",
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]})
    deadline = time.time() + 40
    while free in versions(c, b, "doc"):
        assert time.time() < deadline, "noncurrent expiration did not run"
        time.sleep(0.5)
    # Two more passes' worth of days: the locked versions stay.
    time.sleep(3)
    assert sorted(versions(c, b, "doc")) == sorted([kept, held, current])
    assert c.get_object(Bucket=b, Key="doc", VersionId=kept)["Body"].read() == b"v0"



def test_transition_keeps_the_lock(fast_days):
    c = fast_days.client()
    b = new_bucket(c)
    until = later().replace(microsecond=0)
    vid = c.put_object(Bucket=b, Key="t/a", Body=b"x" * 3000, ObjectLockMode="COMPLIANCE",
                       ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON")[
        "VersionId"]
    c.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        {"ID": "it", "Filter": {"Prefix": "t/"}, "Status": "Enabled",
         "Transitions": [{"Days": 1, "StorageClass": "INTELLIGENT_TIERING"}]}]})
    deadline = time.time() + 40
    while c.head_object(Bucket=b, Key="t/a").get("StorageClass") != "INTELLIGENT_TIERING":
        assert time.time() < deadline, "the transition did not run"
        time.sleep(0.5)
    assert c.get_object_retention(Bucket=b, Key="t/a")["Retention"] == \
        {"Mode": "COMPLIANCE", "RetainUntilDate": until}
    assert c.get_object_legal_hold(Bucket=b, Key="t/a")["LegalHold"] == {"Status": "ON"}
    assert err(lambda: c.delete_object(Bucket=b, Key="t/a", VersionId=vid))[0] == "AccessDenied"
    assert c.get_object(Bucket=b, Key="t/a")["Body"].read() == b"x" * 3000

# --- Persistence ---------------------------------------------------------------------------------

def test_lock_state_survives_a_restart(tmp_path):
    s = Server(str(tmp_path / "data"))
    c = s.client()
    c.create_bucket(Bucket="kept", ObjectLockEnabledForBucket=True)
    c.put_object_lock_configuration(Bucket="kept", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 3}}})
    until = later().replace(microsecond=0)
    vid = c.put_object(Bucket="kept", Key="k", Body=b"v", ObjectLockMode="GOVERNANCE",
                       ObjectLockRetainUntilDate=until)["VersionId"]
    c.put_object_legal_hold(Bucket="kept", Key="k", LegalHold={"Status": "ON"})
    up = c.create_multipart_upload(Bucket="kept", Key="mp")["UploadId"]
    assert s.stop() == 0
    s2 = Server(str(tmp_path / "data"))
    try:
        c = s2.client()
        assert c.get_object_lock_configuration(Bucket="kept")["ObjectLockConfiguration"] == {
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 3}}}
        assert c.get_object_retention(Bucket="kept", Key="k")["Retention"] == \
            {"Mode": "GOVERNANCE", "RetainUntilDate": until}
        assert c.get_object_legal_hold(Bucket="kept", Key="k")["LegalHold"] == {"Status": "ON"}
        assert err(lambda: c.delete_object(Bucket="kept", Key="k", VersionId=vid,
                                           BypassGovernanceRetention=True))[0] == "AccessDenied"
        assert err(lambda: c.put_bucket_versioning(
            Bucket="kept", VersioningConfiguration={"Status": "Suspended"}))[0] == \
            "InvalidBucketState"
        # The upload created before the restart carries the default retention to its object.
        part = c.upload_part(Bucket="kept", Key="mp", UploadId=up, PartNumber=1, Body=b"x")
        c.complete_multipart_upload(Bucket="kept", Key="mp", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        assert c.get_object_retention(Bucket="kept", Key="mp")["Retention"]["Mode"] == \
            "COMPLIANCE"
    finally:
        assert s2.stop() == 0


# --- A cluster -------------------------------------------------------------------------------------

def test_lock_state_across_a_cluster_with_a_node_down(tmp_path):
    from cluster import DevCluster
    c = DevCluster(tmp_path, nodes=3, cores_per_node=2)
    try:
        one = c.client(1)
        one.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
        until = later().replace(microsecond=0)
        keys = [f"k{i}" for i in range(6)]
        vids = {k: one.put_object(Bucket="vault", Key=k, Body=k.encode(),
                                  ObjectLockMode="GOVERNANCE",
                                  ObjectLockRetainUntilDate=until)["VersionId"] for k in keys}
        # Changes through another node: extended to COMPLIANCE, legal holds.
        two = c.client(2)
        longer = until + datetime.timedelta(hours=1)
        for k in keys:
            two.put_object_retention(Bucket="vault", Key=k, BypassGovernanceRetention=True,
                                     Retention={"Mode": "COMPLIANCE", "RetainUntilDate": longer})
            two.put_object_legal_hold(Bucket="vault", Key=k, LegalHold={"Status": "ON"})
        # With a node down, every remaining gateway still refuses the deletes.
        c.kill(3)
        for client in (one, two):
            for k in keys:
                assert err(lambda: client.delete_object(
                    Bucket="vault", Key=k, VersionId=vids[k], BypassGovernanceRetention=True)) \
                    == ("AccessDenied", 403)
        c.restart(3)
        three = c.client(3)
        for k in keys:
            assert three.get_object_retention(Bucket="vault", Key=k)["Retention"] == \
                {"Mode": "COMPLIANCE", "RetainUntilDate": longer}
            assert three.get_object_legal_hold(Bucket="vault", Key=k)["LegalHold"] == \
                {"Status": "ON"}
            three.put_object_legal_hold(Bucket="vault", Key=k, LegalHold={"Status": "OFF"})
            assert err(lambda: three.delete_object(
                Bucket="vault", Key=k, VersionId=vids[k], BypassGovernanceRetention=True)) == \
                ("AccessDenied", 403)
            assert one.get_object(Bucket="vault", Key=k, VersionId=vids[k])["Body"].read() == \
                k.encode()
    finally:
        assert c.stop() == 0
