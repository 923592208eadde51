"""SSE-C (server-side encryption with customer keys) on PutObject, GetObject and HeadObject
(multipart uploads and copies: test_sse_multipart.py):
round trips, ranges, the key checks AWS makes, sizes shown as the plaintext's, no plaintext in
any file of the data directory, and a damaged stored byte never served as data."""
import base64
import hashlib
import os
import re

import pytest
from botocore.exceptions import ClientError

from conftest import running

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SSE = dict(SSECustomerAlgorithm="AES256", SSECustomerKey=KEY)
PACKAGE = 64 << 10


def body_of(size, seed=0):
    return bytes((i * 31 + seed) % 251 for i in range(size))


def error_of(call):
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]



def raw_sse(key):
    """SSE-C parameters as headers carry them, for the calls botocore does not encode
    (GetObjectAttributes)."""
    return dict(SSECustomerAlgorithm="AES256", SSECustomerKey=base64.b64encode(key).decode(),
                SSECustomerKeyMD5=base64.b64encode(hashlib.md5(key).digest()).decode())

@pytest.mark.parametrize("size", [0, 1, PACKAGE - 1, PACKAGE, PACKAGE + 1, (1 << 20) + 17,
                                  (2 << 20) + 5])
def test_round_trip(s3, bucket, size):
    body = body_of(size, size)
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, **SSE)
    key_md5 = base64.b64encode(hashlib.md5(KEY).digest()).decode()
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["SSECustomerKeyMD5"] == key_md5
    # The ETag is not the plaintext's MD5 (documented: it would confirm a guessed content).
    assert put["ETag"] != '"%s"' % hashlib.md5(body).hexdigest()
    got = s3.get_object(Bucket=bucket, Key="k", **SSE)
    assert got["Body"].read() == body
    assert got["ContentLength"] == size
    assert got["ETag"] == put["ETag"]
    assert got["SSECustomerAlgorithm"] == "AES256"
    assert got["SSECustomerKeyMD5"] == key_md5
    head = s3.head_object(Bucket=bucket, Key="k", **SSE)
    assert head["ContentLength"] == size
    assert head["SSECustomerKeyMD5"] == key_md5
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("k", size, put["ETag"])]
    attrs = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"],
                                     **raw_sse(KEY))
    assert attrs["ObjectSize"] == size


def test_checksums_are_the_plaintexts(s3, bucket):
    body = body_of(3 * PACKAGE + 9)
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm="SHA256", **SSE)
    want = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert put["ChecksumSHA256"] == want
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED", **SSE)
    assert got["ChecksumSHA256"] == want
    assert got["Body"].read() == body
    # Content-MD5 is checked against the plaintext.
    s3.put_object(Bucket=bucket, Key="md5", Body=body, **SSE,
                  ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode())
    assert error_of(lambda: s3.put_object(
        Bucket=bucket, Key="bad-md5", Body=body, **SSE,
        ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode()))[1] == "BadDigest"


@pytest.mark.parametrize("first,last", [
    (0, 0), (3 * PACKAGE + 99, 3 * PACKAGE + 99), (PACKAGE - 10, PACKAGE + 10),
    (PACKAGE, 2 * PACKAGE - 1), (5, 3 * PACKAGE + 99), (1 << 20, (1 << 20) + 3),
])
def test_ranges(s3, bucket, first, last):
    size = 3 * PACKAGE + 100
    if last >= size:
        size = last + 1
    body = body_of(size, 7)
    s3.put_object(Bucket=bucket, Key="r", Body=body, **SSE)
    got = s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={first}-{last}", **SSE)
    assert got["Body"].read() == body[first:last + 1]
    assert got["ContentRange"] == f"bytes {first}-{last}/{size}"
    assert got["ContentLength"] == last - first + 1


def test_suffix_and_open_ranges(s3, bucket):
    body = body_of(2 * PACKAGE + 300, 3)
    s3.put_object(Bucket=bucket, Key="r", Body=body, **SSE)
    for spec, want in [("bytes=-500", body[-500:]), ("bytes=-1", body[-1:]),
                       (f"bytes={PACKAGE + 1}-", body[PACKAGE + 1:])]:
        got = s3.get_object(Bucket=bucket, Key="r", Range=spec, **SSE)
        assert got["Body"].read() == want, spec
    assert error_of(lambda: s3.get_object(
        Bucket=bucket, Key="r", Range=f"bytes={len(body)}-", **SSE))[0] == 416
    got = s3.get_object(Bucket=bucket, Key="r", PartNumber=1, **SSE)
    assert got["Body"].read() == body
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="r", PartNumber=2, **SSE))[0] == 416


def test_key_checks(s3, bucket):
    s3.put_object(Bucket=bucket, Key="enc", Body=b"secret", **SSE)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"plain")
    wrong = dict(SSECustomerAlgorithm="AES256", SSECustomerKey=OTHER_KEY)
    # Missing key: 400 InvalidRequest; wrong key: 403 AccessDenied (as AWS).
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="enc")) == (400, "InvalidRequest")
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="enc", **wrong)) == (
        403, "AccessDenied")
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="enc"))[0] == 400
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="enc", **wrong))[0] == 403
    # A key for an object stored plainly: 400 InvalidRequest.
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="plain", **SSE)) == (
        400, "InvalidRequest")
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="plain", **SSE))[0] == 400
    # GetObjectAttributes asks for the key as HEAD does (AWS).
    attrs = dict(ObjectAttributes=["ObjectSize"])
    assert error_of(lambda: s3.get_object_attributes(Bucket=bucket, Key="enc", **attrs)) == (
        400, "InvalidRequest")
    assert error_of(lambda: s3.get_object_attributes(Bucket=bucket, Key="enc", **attrs,
                                                     **raw_sse(OTHER_KEY))) == (403, "AccessDenied")
    got = s3.get_object_attributes(Bucket=bucket, Key="enc", **attrs, **raw_sse(KEY))
    assert got["ObjectSize"] == 6
    assert error_of(lambda: s3.get_object_attributes(Bucket=bucket, Key="plain", **attrs,
                                                     **raw_sse(KEY))) == (400, "InvalidRequest")
    # Bad headers: InvalidArgument, nothing stored.
    b64 = base64.b64encode
    bad = [
        dict(SSECustomerAlgorithm="AES128", SSECustomerKey=KEY),
        dict(SSECustomerAlgorithm="AES256", SSECustomerKey=KEY[:31]),
        # botocore base64-encodes a bytes key only when it computes the MD5 itself.
        dict(SSECustomerAlgorithm="AES256", SSECustomerKey=b64(KEY).decode(),
             SSECustomerKeyMD5=b64(hashlib.md5(OTHER_KEY).digest()).decode()),
    ]
    for extra in bad:
        assert error_of(lambda: s3.put_object(Bucket=bucket, Key="bad", Body=b"x", **extra)) == (
            400, "InvalidArgument"), extra
        assert error_of(lambda: s3.get_object(Bucket=bucket, Key="enc", **extra)) == (
            400, "InvalidArgument"), extra
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="bad"))[0] == 404
    assert s3.get_object(Bucket=bucket, Key="enc", **SSE)["Body"].read() == b"secret"


def test_versions_keep_their_encryption(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    secret = body_of(PACKAGE + 5, 1)
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=secret, **SSE)["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="v", Body=b"plain now")["VersionId"]
    sizes = {v["VersionId"]: v["Size"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]}
    assert sizes == {v1: len(secret), v2: 9}
    assert s3.get_object(Bucket=bucket, Key="v", VersionId=v1, **SSE)["Body"].read() == secret
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="v", VersionId=v1))[0] == 400
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"plain now"


def segment_files(data):
    for root, _, files in os.walk(data):
        for name in files:
            yield os.path.join(root, name)


def contains(data, needle):
    for path in segment_files(data):
        with open(path, "rb") as f:
            if needle in f.read():
                return True
    return False


@pytest.fixture
def stored(tmp_path):
    """Stores objects in the bucket `sse` of a server of its own: `stored(*objects)` (keyword
    arguments of put_object each) returns the data directory, the server stopped."""
    data = str(tmp_path / "data")

    def store(*objects):
        with running(data) as s:
            c = s.client()
            c.create_bucket(Bucket="sse")
            for o in objects:
                c.put_object(Bucket="sse", **o)
        return data

    return store


def test_no_plaintext_on_disk(stored):
    secret = b"percore-sse-secret-pattern-0001!" * 8192
    plain = b"percore-sse-plain-pattern-00002!" * 8192
    data = stored(dict(Key="secret", Body=secret, **SSE), dict(Key="plain", Body=plain))
    with running(data) as s:
        got = s.client().get_object(Bucket="sse", Key="secret", **SSE)["Body"].read()
        assert got == secret
    # The scan finds a pattern stored plainly, so its finding nothing means something.
    assert contains(data, plain[:64])
    assert not contains(data, secret[:64])
    assert not contains(data, secret[5:37])


def test_damaged_stored_byte_is_never_served(stored):
    body = body_of(5 * PACKAGE + 3, 11)
    data = stored(dict(Key="k", Body=body, **SSE))
    # Flip a byte inside every fragment record (every copy of every stripe).
    flipped = 0
    for path in segment_files(data):
        if not os.path.basename(path).startswith("seg-"):
            continue
        with open(path, "rb") as f:
            raw = bytearray(f.read())
        for m in re.finditer(re.escape(b"PCR1\x02\x01"), bytes(raw)):
            if m.start() % 8 == 0 and m.start() + 3 * PACKAGE < len(raw):
                raw[m.start() + 2 * PACKAGE] ^= 0x5A
                flipped += 1
        with open(path, "wb") as f:
            f.write(raw)
    assert flipped > 0
    with running(data) as s:
        try:
            got = s.client().get_object(Bucket="sse", Key="k", **SSE)["Body"].read()
        except Exception:  # an error status, or a body cut short: never wrong bytes
            got = None
        assert got is None or got == body
        assert got != body, "every copy was damaged: nothing can serve the body"
