"""SSE-S3 (the master key file's active key), SSE-KMS against named keys of that file, and
bucket default encryption: round trips, ranges, the response headers AWS sends, plaintext sizes
in listings, no plaintext on disk, rotation across restarts, a missing master key answered 500
(never bytes), the key file created 0600 and a bad one refusing to start."""
import base64
import os
import stat
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import percore_bin, running
from test_sse import PACKAGE, body_of, contains, error_of

S3 = dict(ServerSideEncryption="AES256")
CUSTOMER = dict(SSECustomerAlgorithm="AES256", SSECustomerKey=bytes(range(32)))


def keys_path(data):
    return os.path.join(data, "master.keys")


def key_ids(data):
    with open(keys_path(data)) as f:
        return [line.split()[1] for line in f if line.startswith("key ")]


def percore_key(*args):
    return subprocess.run([percore_bin(), "key", *args], capture_output=True, text=True,
                          timeout=60)


def default_of(s3, bucket):
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert len(rules) == 1
    return rules[0]


@pytest.mark.parametrize("size", [0, 1, PACKAGE - 1, PACKAGE, PACKAGE + 1, (2 << 20) + 5])
def test_round_trip(s3, bucket, size):
    body = body_of(size, size + 3)
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, **S3)
    assert put["ServerSideEncryption"] == "AES256"
    assert "SSECustomerAlgorithm" not in put
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == body
    assert got["ServerSideEncryption"] == "AES256"
    assert got["ContentLength"] == size
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key="k")
    assert (head["ContentLength"], head["ServerSideEncryption"]) == (size, "AES256")
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("k", size)]
    attrs = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert attrs["ObjectSize"] == size
    # A plain object answers no encryption header.
    s3.put_object(Bucket=bucket, Key="plain", Body=b"p")
    assert "ServerSideEncryption" not in s3.head_object(Bucket=bucket, Key="plain")


@pytest.mark.parametrize("first,last", [
    (0, 0), (PACKAGE - 10, PACKAGE + 10), (PACKAGE, 2 * PACKAGE - 1), (5, 3 * PACKAGE + 99),
    (3 * PACKAGE + 99, 3 * PACKAGE + 99),
])
def test_ranges(s3, bucket, first, last):
    body = body_of(3 * PACKAGE + 100, 5)
    s3.put_object(Bucket=bucket, Key="r", Body=body, **S3)
    got = s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={first}-{last}")
    assert got["Body"].read() == body[first:last + 1]
    assert got["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
    assert got["ServerSideEncryption"] == "AES256"


def test_request_checks(s3, bucket):
    s3.put_object(Bucket=bucket, Key="enc", Body=b"secret", **S3)
    # An SSE-C key for an SSE-S3 object: 400, as for a plain one.
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="enc", **CUSTOMER)) == (
        400, "InvalidRequest")
    bad = [
        dict(CUSTOMER, **S3),  # SSE-C with another method
        dict(SSEKMSKeyId="master-1", **S3),  # a KMS key without aws:kms
        dict(ServerSideEncryption="AES128"),
    ]
    for extra in bad:
        assert error_of(lambda: s3.put_object(Bucket=bucket, Key="bad", Body=b"x", **extra)) == (
            400, "InvalidArgument"), extra
    assert error_of(lambda: s3.put_object(
        Bucket=bucket, Key="bad", Body=b"x", ServerSideEncryption="aws:kms",
        SSEKMSKeyId="no-such-key")) == (400, "KMS.NotFoundException")
    for extra in [dict(ServerSideEncryption="aws:kms:dsse"),
                  dict(ServerSideEncryption="aws:kms", SSEKMSEncryptionContext="eyJhIjoiYiJ9")]:
        assert error_of(lambda: s3.put_object(Bucket=bucket, Key="bad", Body=b"x", **extra)) == (
            501, "NotImplemented"), extra
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="bad"))[0] == 404


def test_post_form_fields(server, s3, bucket):
    from test_post_upload import post, presigned
    for key, fields, want in [
        ("s3", {"x-amz-server-side-encryption": "AES256"}, ("AES256", None)),
        ("kms", {"x-amz-server-side-encryption": "aws:kms",
                 "x-amz-server-side-encryption-aws-kms-key-id": "master-1"},
         ("aws:kms", "master-1")),
    ]:
        f = presigned(server, bucket, key, fields=fields,
                      conditions=[{k: v} for k, v in fields.items()])
        status, _, body = post(server, bucket, f, b"posted " + key.encode())
        assert status == 204, body
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == b"posted " + key.encode()
        assert (got["ServerSideEncryption"], got.get("SSEKMSKeyId")) == want


def test_bucket_default_encryption(s3, bucket):
    assert error_of(lambda: s3.get_bucket_encryption(Bucket=bucket)) == (
        404, "ServerSideEncryptionConfigurationNotFoundError")
    s3.put_object(Bucket=bucket, Key="before", Body=b"plain")
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    rule = default_of(s3, bucket)
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert rule["BucketKeyEnabled"] is False
    put = s3.put_object(Bucket=bucket, Key="after", Body=b"now encrypted")
    assert put["ServerSideEncryption"] == "AES256"
    got = s3.get_object(Bucket=bucket, Key="after")
    assert (got["Body"].read(), got["ServerSideEncryption"]) == (b"now encrypted", "AES256")
    assert "ServerSideEncryption" not in s3.head_object(Bucket=bucket, Key="before")
    # An SSE-C request still uses its own key.
    s3.put_object(Bucket=bucket, Key="customer", Body=b"mine", **CUSTOMER)
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="customer"))[0] == 400
    assert s3.get_object(Bucket=bucket, Key="customer", **CUSTOMER)["Body"].read() == b"mine"
    # Refused configurations leave the default as it was.
    refused = [
        ({"SSEAlgorithm": "AES256"}, True, (501, "NotImplemented")),
        ({"SSEAlgorithm": "aws:kms:dsse"}, None, (501, "NotImplemented")),
        ({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "no-such-key"}, None,
         (400, "KMS.NotFoundException")),
        ({"SSEAlgorithm": "AES256", "KMSMasterKeyID": "master-1"}, None, (400, "InvalidArgument")),
    ]
    for by_default, bucket_key, want in refused:
        rule = {"ApplyServerSideEncryptionByDefault": by_default}
        if bucket_key is not None:
            rule["BucketKeyEnabled"] = bucket_key
        assert error_of(lambda: s3.put_bucket_encryption(
            Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})) == want, rule
    assert default_of(s3, bucket)["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    # aws:kms without a key id: the active master key.
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
         "BucketKeyEnabled": False}]})
    put = s3.put_object(Bucket=bucket, Key="kms", Body=b"k")
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", "master-1")
    s3.delete_bucket_encryption(Bucket=bucket)
    assert error_of(lambda: s3.get_bucket_encryption(Bucket=bucket))[0] == 404
    assert "ServerSideEncryption" not in s3.put_object(Bucket=bucket, Key="plain", Body=b"p")
    s3.create_multipart_upload(Bucket=bucket, Key="mp")


def test_kms_named_keys(tmp_path):
    data = str(tmp_path / "data")
    assert percore_key("add-kms", "backups", "--data", data).returncode == 0
    assert key_ids(data) == ["master-1", "backups"]
    r = percore_key("add-kms", "backups", "--data", data)
    assert r.returncode != 0 and "already" in r.stderr
    with running(data) as s:
        c = s.client()
        c.create_bucket(Bucket="kms")
        for key, named in [("bare", "backups"),
                           ("arn", "arn:aws:kms:us-east-1:111122223333:key/backups")]:
            put = c.put_object(Bucket="kms", Key=key, Body=b"secret " + key.encode(),
                               ServerSideEncryption="aws:kms", SSEKMSKeyId=named)
            assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", "backups")
            got = c.get_object(Bucket="kms", Key=key)
            assert got["Body"].read() == b"secret " + key.encode()
            assert (got["ServerSideEncryption"], got["SSEKMSKeyId"]) == ("aws:kms", "backups")
        c.put_bucket_encryption(Bucket="kms", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                    "KMSMasterKeyID": "backups"}}]})
        assert default_of(c, "kms")["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "backups"}
        put = c.put_object(Bucket="kms", Key="default", Body=b"d")
        assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", "backups")
        head = c.head_object(Bucket="kms", Key="default")
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", "backups")


def remove_key(data, key_id):
    with open(keys_path(data)) as f:
        lines = [line for line in f if not line.startswith(f"key {key_id} ")]
    with open(keys_path(data), "w") as f:
        f.writelines(lines)


def test_rotation_and_a_missing_master_key(tmp_path):
    data = str(tmp_path / "data")
    old = b"percore-sse-s3-old-pattern-0001!" * 4096
    new = b"percore-sse-s3-new-pattern-0002!" * 4096
    plain = b"percore-sse-s3-plain-pattern-03!" * 4096
    with running(data) as s:
        c = s.client()
        c.create_bucket(Bucket="rot")
        c.put_object(Bucket="rot", Key="old", Body=old, **S3)
        c.put_object(Bucket="rot", Key="plain", Body=plain)
    assert stat.S_IMODE(os.stat(keys_path(data)).st_mode) == 0o600
    assert key_ids(data) == ["master-1"]
    r = percore_key("rotate-master", "--data", data)
    assert (r.returncode, r.stdout.strip()) == (0, "master-2"), r.stderr
    assert key_ids(data) == ["master-1", "master-2"]
    with running(data) as s:
        c = s.client()
        c.put_object(Bucket="rot", Key="new", Body=new, **S3)
        assert c.get_object(Bucket="rot", Key="old")["Body"].read() == old
    with running(data) as s:
        c = s.client()
        assert c.get_object(Bucket="rot", Key="old")["Body"].read() == old
        assert c.get_object(Bucket="rot", Key="new")["Body"].read() == new
    # The scan finds a pattern stored plainly, so its finding nothing means something.
    assert contains(data, plain[:64])
    assert not contains(data, old[:64]) and not contains(data, new[:64])
    # master-1 gone from the file: its object answers 500 (logged at ERROR), never bytes;
    # the object under master-2 is served.
    remove_key(data, "master-1")
    log = str(tmp_path / "log")
    with open(log, "w") as err, running(data, stderr=err) as s:
        c = s.client()
        assert error_of(lambda: c.get_object(Bucket="rot", Key="old")) == (500, "InternalError")
        assert error_of(lambda: c.get_object(Bucket="rot", Key="old", Range="bytes=0-9"))[0] == 500
        assert error_of(lambda: c.head_object(Bucket="rot", Key="old"))[0] == 500
        assert c.get_object(Bucket="rot", Key="new")["Body"].read() == new
    with open(log) as f:
        text = f.read()
    assert "ERROR" in text and "master key is missing" in text, text[-2000:]


@pytest.mark.parametrize("content,mode,why", [
    ("percore-master-keys 1\nkey a c2hvcnQ=\nactive a\n", 0o600, "line 2"),
    ("percore-master-keys 1\n", 0o600, "no `active"),
    ("hello\n", 0o600, "line 1"),
    ("percore-master-keys 1\nkey a %s\nactive a\n" % base64.b64encode(b"k" * 32).decode(),
     0o644, "chmod 600"),
])
def test_a_bad_key_file_stops_the_server(tmp_path, content, mode, why):
    data = tmp_path / "data"
    data.mkdir()
    path = data / "master.keys"
    path.write_text(content)
    os.chmod(path, mode)
    r = subprocess.run([percore_bin(), "serve", "--data", str(data), "--listen", "127.0.0.1:0",
                        "--cores", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "master key file" in r.stderr and why in r.stderr, r.stderr


def test_encrypted_object_with_its_own_acl(s3, anon, bucket):
    """SSE-S3 and an object ACL on one version (head format 9 with a master-key kind): an
    anonymous GET of the public-read object gets the plaintext, its ACL reads back, and a new
    ACL keeps the object encrypted and readable."""
    body = body_of(PACKAGE + 7, 11)
    s3.put_object(Bucket=bucket, Key="pub", Body=body, ACL="public-read", **S3)
    got = anon.get_object(Bucket=bucket, Key="pub")
    assert (got["Body"].read(), got["ServerSideEncryption"]) == (body, "AES256")
    grants = s3.get_object_acl(Bucket=bucket, Key="pub")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants)
    s3.put_object_acl(Bucket=bucket, Key="pub", ACL="private")
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="pub")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    got = s3.get_object(Bucket=bucket, Key="pub", Range="bytes=1-3")
    assert (got["Body"].read(), got["ServerSideEncryption"]) == (body[1:4], "AES256")
