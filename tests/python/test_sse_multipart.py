"""Server-side encryption of multipart uploads and copies: every part sealed under the upload's
key (SSE-C, SSE-S3, SSE-KMS, a bucket's default), the SSE-C key required on UploadPart,
UploadPartCopy and Complete as on GET, ranges and partNumber over the plaintext of parts,
sizes shown as the plaintext's, encrypted copy sources opened with their key and copies sealed
under the destination's own, and no plaintext of any of them on disk."""
import base64
import hashlib

import pytest

from conftest import running
from test_sse import KEY, OTHER_KEY, SSE, body_of, contains, error_of, raw_sse

MIB = 1 << 20
OTHER = dict(SSECustomerAlgorithm="AES256", SSECustomerKey=OTHER_KEY)
S3 = dict(ServerSideEncryption="AES256")
KEY_MD5 = base64.b64encode(hashlib.md5(KEY).digest()).decode()
# Part sizes: two above the 5 MiB minimum (one not a multiple of the 64 KiB package), a short
# last part.
PARTS = [5 * MIB + 3, 5 * MIB, 1234]


def upload(s3, bucket, key, parts, create=None, part=None, complete=None, **kw):
    """A multipart upload of `parts` (bodies), with extra arguments for each call; returns the
    Complete's answer."""
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **(create or {}), **kw)["UploadId"]
    done = []
    for n, body in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=body,
                           **(part or {}))
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                        MultipartUpload={"Parts": done}, **(complete or {}))


def read(s3, bucket, key, **kw):
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def test_sse_c_upload_round_trip_and_key_checks(s3, bucket):
    bodies = [body_of(n, i) for i, n in enumerate(PARTS)]
    whole = b"".join(bodies)
    created = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32",
                                         **SSE)
    assert (created["SSECustomerAlgorithm"], created["SSECustomerKeyMD5"]) == ("AES256", KEY_MD5)
    up = created["UploadId"]
    # A part needs the upload's key: none 400, another 403, and nothing is stored for them.
    assert error_of(lambda: s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"x")) == (400, "InvalidRequest")
    assert error_of(lambda: s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"x", **OTHER))[0] == 403
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=up).get("Parts", []) == []
    parts = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=n, Body=body,
                           ChecksumAlgorithm="CRC32", **SSE)
        assert r["SSECustomerKeyMD5"] == KEY_MD5
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=up)["Parts"]
    assert [p["Size"] for p in listed] == PARTS
    # ListParts needs no key; one sent is checked.
    assert len(s3.list_parts(Bucket=bucket, Key="mp", UploadId=up, **raw_sse(KEY))["Parts"]) == 3
    assert error_of(lambda: s3.list_parts(Bucket=bucket, Key="mp", UploadId=up,
                                          **raw_sse(OTHER_KEY)))[0] == 403
    mpu = {"Parts": parts}
    assert error_of(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up, MultipartUpload=mpu)) == (400, "InvalidRequest")
    assert error_of(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up, MultipartUpload=mpu, **OTHER))[0] == 403
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload=mpu, **SSE)
    # A retried Complete is answered as the first (the upload is gone: no key to check).
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload=mpu, **SSE)

    assert read(s3, bucket, "mp", **SSE) == whole
    assert error_of(lambda: read(s3, bucket, "mp")) == (400, "InvalidRequest")
    assert error_of(lambda: read(s3, bucket, "mp", **OTHER))[0] == 403
    head = s3.head_object(Bucket=bucket, Key="mp", **SSE)
    assert head["ContentLength"] == len(whole)
    assert head["ETag"].endswith('-3"')
    [o] = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert o["Size"] == len(whole)
    # Ranges inside a part, across each part boundary, and over all of them.
    b1, b2 = PARTS[0], PARTS[0] + PARTS[1]
    for first, last in [(0, 0), (b1 - 1, b1), (b1 - 70_000, b1 + 70_000), (b2 - 1, b2 + 5),
                        (b2, len(whole) - 1), (3, len(whole) - 2), (0, len(whole) - 1)]:
        got = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={first}-{last}", **SSE)
        assert got["Body"].read() == whole[first:last + 1], (first, last)
        assert got["ContentRange"] == f"bytes {first}-{last}/{len(whole)}"
    # partNumber: each part's plaintext.
    for n, body in enumerate(bodies, 1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=n, **SSE)
        assert (got["Body"].read(), got["PartsCount"]) == (body, 3)
        assert s3.head_object(Bucket=bucket, Key="mp", PartNumber=n, **SSE)[
            "ContentLength"] == len(body)
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="mp", PartNumber=4, **SSE)) == (
        416, "InvalidPartNumber")
    attrs = s3.get_object_attributes(Bucket=bucket, Key="mp",
                                     ObjectAttributes=["ObjectParts", "ObjectSize"],
                                     **raw_sse(KEY))
    assert attrs["ObjectSize"] == len(whole)
    assert [p["Size"] for p in attrs["ObjectParts"]["Parts"]] == PARTS


def test_a_part_uploaded_again_is_sealed_anew(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="again", **SSE)["UploadId"]
    first = s3.upload_part(Bucket=bucket, Key="again", UploadId=up, PartNumber=1,
                           Body=b"a" * 100, **SSE)
    second = s3.upload_part(Bucket=bucket, Key="again", UploadId=up, PartNumber=1,
                            Body=b"a" * 100, **SSE)
    # Same plaintext, same key: a fresh nonce base gives other ciphertext, so another ETag.
    assert first["ETag"] != second["ETag"]
    assert error_of(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="again", UploadId=up, **SSE,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": first["ETag"]}]}))[0] == 400
    s3.complete_multipart_upload(
        Bucket=bucket, Key="again", UploadId=up, **SSE,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": second["ETag"]}]})
    assert read(s3, bucket, "again", **SSE) == b"a" * 100


def test_a_key_for_a_part_of_a_plain_upload_stores_nothing(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="plain")["UploadId"]
    assert error_of(lambda: s3.upload_part(
        Bucket=bucket, Key="plain", UploadId=up, PartNumber=1, Body=b"x" * 10,
        **SSE)) == (400, "InvalidRequest")
    assert s3.list_parts(Bucket=bucket, Key="plain", UploadId=up).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=bucket, Key="plain", UploadId=up)


@pytest.mark.parametrize("asked,shown", [
    (dict(ServerSideEncryption="AES256"), ("AES256", None)),
    (dict(ServerSideEncryption="aws:kms", SSEKMSKeyId="master-1"), ("aws:kms", "master-1")),
])
def test_sse_s3_and_kms_uploads(s3, bucket, asked, shown):
    bodies = [body_of(5 * MIB, 1), body_of(777, 2)]
    created = s3.create_multipart_upload(Bucket=bucket, Key="mp", **asked)
    assert (created["ServerSideEncryption"], created.get("SSEKMSKeyId")) == shown
    up = created["UploadId"]
    # SSE-S3 and SSE-KMS parts need no key; an SSE-C key on them is refused.
    assert error_of(lambda: s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"x", **SSE))[0] == 400
    done = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=n, Body=body)
        assert (r["ServerSideEncryption"], r.get("SSEKMSKeyId")) == shown
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    r = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up,
                                     MultipartUpload={"Parts": done})
    assert (r["ServerSideEncryption"], r.get("SSEKMSKeyId")) == shown
    got = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={5 * MIB - 2}-{5 * MIB + 2}")
    assert got["Body"].read() == b"".join(bodies)[5 * MIB - 2:5 * MIB + 3]
    assert (got["ServerSideEncryption"], got.get("SSEKMSKeyId")) == shown
    assert read(s3, bucket, "mp") == b"".join(bodies)


def test_bucket_default_applies_to_uploads_and_copies(s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"plain before the default")
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    try:
        upload(s3, bucket, "mp", [body_of(5 * MIB, 3), b"tail"])
        head = s3.head_object(Bucket=bucket, Key="mp")
        assert (head["ServerSideEncryption"], head["ContentLength"]) == ("AES256", 5 * MIB + 4)
        copied = s3.copy_object(Bucket=bucket, Key="copy",
                                CopySource={"Bucket": bucket, "Key": "plain"})
        assert copied["ServerSideEncryption"] == "AES256"
        assert read(s3, bucket, "copy") == b"plain before the default"
        # An SSE-C request still uses its own key.
        upload(s3, bucket, "mine", [b"customer's"], create=SSE, part=SSE, complete=SSE)
        assert "ServerSideEncryption" not in s3.head_object(Bucket=bucket, Key="mine", **SSE)
    finally:
        s3.delete_bucket_encryption(Bucket=bucket)


def test_copies_open_their_source_and_seal_for_their_destination(s3, bucket):
    body = body_of(3 * 65536 + 17, 5)
    s3.put_object(Bucket=bucket, Key="c", Body=body, **SSE)
    src = {"Bucket": bucket, "Key": "c"}
    source_key = dict(CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=KEY)
    wrong_key = dict(CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=OTHER_KEY)
    # The source's key: none 400, another 403; a source key for a plain source 400.
    assert error_of(lambda: s3.copy_object(Bucket=bucket, Key="x", CopySource=src))[0] == 400
    assert error_of(lambda: s3.copy_object(Bucket=bucket, Key="x", CopySource=src,
                                           **wrong_key))[0] == 403
    # SSE-C to plain, to SSE-S3, to SSE-C under another key.
    s3.copy_object(Bucket=bucket, Key="plain", CopySource=src, **source_key)
    assert read(s3, bucket, "plain") == body
    assert "ServerSideEncryption" not in s3.head_object(Bucket=bucket, Key="plain")
    r = s3.copy_object(Bucket=bucket, Key="s3", CopySource=src, **source_key, **S3)
    assert r["ServerSideEncryption"] == "AES256"
    assert read(s3, bucket, "s3") == body
    r = s3.copy_object(Bucket=bucket, Key="other", CopySource=src, **source_key, **OTHER)
    assert r["SSECustomerAlgorithm"] == "AES256"
    assert read(s3, bucket, "other", **OTHER) == body
    assert error_of(lambda: read(s3, bucket, "other", **SSE))[0] == 403
    assert error_of(lambda: s3.copy_object(
        Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "plain"},
        **source_key)) == (400, "InvalidRequest")
    # A key change onto the object itself is a copy S3 allows without a metadata change.
    s3.copy_object(Bucket=bucket, Key="c", CopySource=src, **source_key, **OTHER)
    assert read(s3, bucket, "c", **OTHER) == body
    assert error_of(lambda: read(s3, bucket, "c", **SSE))[0] == 403
    # A multipart SSE-S3 source copied whole to SSE-C: one part, the same bytes.
    parts = [body_of(5 * MIB, 6), body_of(100, 7)]
    upload(s3, bucket, "mp", parts, create=S3)
    s3.copy_object(Bucket=bucket, Key="mp-copy", CopySource={"Bucket": bucket, "Key": "mp"},
                   **SSE)
    assert read(s3, bucket, "mp-copy", **SSE) == b"".join(parts)
    assert not s3.head_object(Bucket=bucket, Key="mp-copy", **SSE)["ETag"].endswith('-2"')


def test_upload_part_copy_between_encryptions(s3, bucket):
    whole = body_of(6 * MIB + 9, 8)
    upload(s3, bucket, "src", [whole[:5 * MIB], whole[5 * MIB:]], create=SSE, part=SSE,
           complete=SSE)
    src = {"Bucket": bucket, "Key": "src"}
    source_key = dict(CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=KEY)
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst", **OTHER)["UploadId"]
    copy = dict(Bucket=bucket, Key="dst", UploadId=up, CopySource=src)
    # The source's key and the upload's are both needed.
    assert error_of(lambda: s3.upload_part_copy(PartNumber=1, **copy, **OTHER))[0] == 400
    assert error_of(lambda: s3.upload_part_copy(PartNumber=1, **copy, **source_key))[0] == 400
    # Part 1 spans the source's part boundary; part 2 is the rest.
    cut = 5 * MIB + 4
    r1 = s3.upload_part_copy(PartNumber=1, CopySourceRange=f"bytes=0-{cut - 1}", **copy,
                             **source_key, **OTHER)
    r2 = s3.upload_part_copy(PartNumber=2, CopySourceRange=f"bytes={cut}-{len(whole) - 1}",
                             **copy, **source_key, **OTHER)
    assert r1["SSECustomerAlgorithm"] == "AES256"
    parts = [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
             {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}]
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=up,
                                 MultipartUpload={"Parts": parts}, **OTHER)
    assert read(s3, bucket, "dst", **OTHER) == whole
    assert s3.get_object(Bucket=bucket, Key="dst", PartNumber=2, **OTHER)[
        "ContentLength"] == len(whole) - cut


def test_no_plaintext_of_uploads_or_copies_on_disk(tmp_path):
    data = str(tmp_path / "data")
    secret = b"percore-mpu-secret-pattern-0003!" * (6 * MIB // 32)
    plain = b"percore-mpu-plain-pattern-00004!" * 8192
    with running(data) as s:
        c = s.client()
        c.create_bucket(Bucket="sse")
        upload(c, "sse", "c", [secret[:5 * MIB], secret[5 * MIB:]], create=SSE, part=SSE,
               complete=SSE)
        upload(c, "sse", "s", [secret[:5 * MIB], secret[5 * MIB:]], create=S3)
        c.put_object(Bucket="sse", Key="plain", Body=plain)
        c.copy_object(Bucket="sse", Key="copy", CopySource={"Bucket": "sse", "Key": "c"},
                      CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=KEY,
                      **S3)
        assert read(c, "sse", "c", **SSE) == secret
        assert read(c, "sse", "copy") == secret
    # The scan finds a pattern stored plainly, so its finding no secret means something.
    assert contains(data, plain[:64])
    assert not contains(data, secret[:64])
    assert not contains(data, secret[5 * MIB - 40:5 * MIB + 24])
