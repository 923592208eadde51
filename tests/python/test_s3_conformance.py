"""S3 behaviours where percore answered differently from AWS (issue: conformance gaps), each
checked as AWS documents it."""
import base64
import hashlib
import http.client
import time
import urllib.parse
import uuid
import zlib

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


def _sums(resp):
    return {k: v for k, v in resp.items() if k.startswith("Checksum")}


def crc64nvme(data):
    """CRC-64/NVME bit by bit (reflected polynomial 0x9a6c9329ac4bc9b5), independent of the
    server's table-driven code."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x9A6C9329AC4BC9B5 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def test_a_put_without_a_checksum_gets_crc64nvme(server, bucket):
    assert crc64nvme(b"123456789") == 0xAE8B14860A799888  # the catalogue's check value
    want = base64.b64encode(crc64nvme(b"hello").to_bytes(8, "big")).decode()
    plain = server.client(request_checksum_calculation="when_required",
                          response_checksum_validation="when_required")
    put = plain.put_object(Bucket=bucket, Key="k", Body=b"hello")
    assert put["ChecksumCRC64NVME"] == want
    head = plain.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert _sums(head) == {"ChecksumCRC64NVME": want, "ChecksumType": "FULL_OBJECT"}


def test_a_copy_keeps_a_checksum(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"hello", ChecksumAlgorithm="SHA256")
    sha = base64.b64encode(hashlib.sha256(b"hello").digest()).decode()
    out = s3.copy_object(Bucket=bucket, Key="same", CopySource=f"{bucket}/src")
    assert out["CopyObjectResult"]["ChecksumSHA256"] == sha
    head = s3.head_object(Bucket=bucket, Key="same", ChecksumMode="ENABLED")
    assert _sums(head) == {"ChecksumSHA256": sha, "ChecksumType": "FULL_OBJECT"}
    s3.copy_object(Bucket=bucket, Key="other", CopySource=f"{bucket}/src",
                   ChecksumAlgorithm="CRC32")
    head = s3.head_object(Bucket=bucket, Key="other", ChecksumMode="ENABLED")
    crc = base64.b64encode(zlib.crc32(b"hello").to_bytes(4, "big")).decode()
    assert _sums(head) == {"ChecksumCRC32": crc, "ChecksumType": "FULL_OBJECT"}


def test_of_two_uploads_of_a_part_the_one_that_completes_last_is_the_part(server, s3, bucket):
    # The first upload of part 1 starts, sends half its body and waits; a second upload of
    # part 1 starts and completes; then the first completes. S3 keeps the part that completed
    # last (the first), so Complete with its ETag works and the object holds its bytes.
    up = s3.create_multipart_upload(Bucket=bucket, Key="race")["UploadId"]
    first, second = b"1" * 100_000, b"2" * 100_000
    url = urllib.parse.urlsplit(s3.generate_presigned_url(
        "upload_part", Params={"Bucket": bucket, "Key": "race", "UploadId": up,
                               "PartNumber": 1}, ExpiresIn=300))
    slow = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    slow.putrequest("PUT", f"{url.path}?{url.query}")
    slow.putheader("Content-Length", str(len(first)))
    slow.endheaders()
    slow.send(first[:50_000])
    time.sleep(0.3)
    quick = s3.upload_part(Bucket=bucket, Key="race", UploadId=up, PartNumber=1, Body=second)
    slow.send(first[50_000:])
    resp = slow.getresponse()
    assert resp.status == 200, resp.read()
    etag = resp.getheader("ETag")
    slow.close()
    assert etag == '"%s"' % hashlib.md5(first).hexdigest()
    assert quick["ETag"] != etag
    parts = s3.list_parts(Bucket=bucket, Key="race", UploadId=up)["Parts"]
    assert [p["ETag"] for p in parts] == [etag]
    s3.complete_multipart_upload(Bucket=bucket, Key="race", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == first
