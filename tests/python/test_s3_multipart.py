"""Multipart uploads against a real `percore serve`: boto3's own multipart path and the
explicit API with its error cases."""
import base64
import hashlib
import os
import zlib

import boto3
import pytest
from awscrt import checksums as crc_checksums
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def code(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def test_upload_fileobj_uses_multipart(s3, bucket, tmp_path):
    data = os.urandom(13 * MiB + 77)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(str(path), bucket, "big.bin", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-3"')
    out = tmp_path / "out.bin"
    s3.download_file(bucket, "big.bin", str(out), Config=cfg)
    assert out.read_bytes() == data
    r = s3.get_object(Bucket=bucket, Key="big.bin", Range=f"bytes={5 * MiB - 3}-{5 * MiB + 2}")
    assert r["Body"].read() == data[5 * MiB - 3:5 * MiB + 3]
    p2 = s3.get_object(Bucket=bucket, Key="big.bin", PartNumber=2)
    assert p2["PartsCount"] == 3
    assert p2["Body"].read() == data[5 * MiB:10 * MiB]
    h3 = s3.head_object(Bucket=bucket, Key="big.bin", PartNumber=3)
    assert h3["ContentLength"] == len(data) - 10 * MiB and h3["PartsCount"] == 3


def test_explicit_api_and_etag(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="m", ContentType="video/x",
                                    Metadata={"a": "1"})["UploadId"]
    p1 = os.urandom(5 * MiB)
    p2 = os.urandom(1234)
    e1 = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=2, Body=p2)["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="m", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB), (2, 1234)]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("m", up)]
    r = s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    md5s = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest()
    assert r["ETag"] == f'"{md5s}-2"'
    g = s3.get_object(Bucket=bucket, Key="m")
    assert g["Body"].read() == p1 + p2
    assert g["ContentType"] == "video/x" and g["Metadata"] == {"a": "1"}
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="m", UploadId=up)
    assert code(e.value) == ("NoSuchUpload", 404)


def test_complete_errors(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="x")["UploadId"]
    small = b"s" * 1000
    e1 = s3.upload_part(Bucket=bucket, Key="x", UploadId=up, PartNumber=1, Body=small)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="x", UploadId=up, PartNumber=2, Body=small)["ETag"]
    cases = [
        ([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}], "EntityTooSmall"),
        ([{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}], "InvalidPartOrder"),
        ([{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}], "InvalidPart"),
        ([{"PartNumber": 3, "ETag": e1}], "InvalidPart"),
    ]
    for parts, want in cases:
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=bucket, Key="x", UploadId=up,
                                         MultipartUpload={"Parts": parts})
        assert code(e.value)[0] == want, parts
    # A single small part is a valid upload.
    s3.complete_multipart_upload(Bucket=bucket, Key="x", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert s3.get_object(Bucket=bucket, Key="x")["Body"].read() == small
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="x", UploadId="nosuchupload", PartNumber=1, Body=b"x")
    assert code(e.value) == ("NoSuchUpload", 404)


def test_abort_and_reupload_part(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="a")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="a", UploadId=up, PartNumber=1, Body=b"first")
    e = s3.upload_part(Bucket=bucket, Key="a", UploadId=up, PartNumber=1, Body=b"second")["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="a", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, e)]
    with pytest.raises(ClientError) as err:
        s3.upload_part(Bucket=bucket, Key="a", UploadId=up, PartNumber=10001, Body=b"x")
    assert code(err.value)[1] == 400
    s3.abort_multipart_upload(Bucket=bucket, Key="a", UploadId=up)
    with pytest.raises(ClientError) as err:
        s3.abort_multipart_upload(Bucket=bucket, Key="a", UploadId=up)
    assert code(err.value) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="a")
    assert code(err.value)[0] == "NoSuchKey"


def test_copy_object(s3, bucket):
    data = os.urandom(3 * MiB + 5)
    r = s3.put_object(Bucket=bucket, Key="src", Body=data, ContentType="a/b", Metadata={"m": "1"})
    c = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert c["CopyObjectResult"]["ETag"] == r["ETag"]
    g = s3.get_object(Bucket=bucket, Key="dst")
    assert g["Body"].read() == data and g["ContentType"] == "a/b" and g["Metadata"] == {"m": "1"}
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", ContentType="c/d", Metadata={"n": "2"})
    h = s3.head_object(Bucket=bucket, Key="dst2")
    assert h["ContentType"] == "c/d" and h["Metadata"] == {"n": "2"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert code(e.value) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "src"},
                       CopySourceIfMatch='"nope"')
    assert code(e.value) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert code(e.value) == ("NoSuchKey", 404)
    # Overwriting the source by a copy of another object keeps both readable as expected.
    s3.put_object(Bucket=bucket, Key="src", Body=b"new")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == data


def test_upload_part_copy(s3, bucket):
    data = os.urandom(7 * MiB)
    s3.put_object(Bucket=bucket, Key="whole", Body=data)
    up = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    src = {"Bucket": bucket, "Key": "whole"}
    e1 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=up, PartNumber=1,
                             CopySource=src, CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    e2 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=up, PartNumber=2,
                             CopySource=src, CopySourceRange=f"bytes={6 * MiB}-{7 * MiB - 1}")
    s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1["CopyPartResult"]["ETag"]},
                  {"PartNumber": 2, "ETag": e2["CopyPartResult"]["ETag"]}]})
    got = s3.get_object(Bucket=bucket, Key="assembled")["Body"].read()
    assert got == data[:5 * MiB] + data[6 * MiB:]


# Checksums of multipart uploads: x-amz-checksum-algorithm / -type on Create, a checksum per part,
# the object's (COMPOSITE `value-N` or FULL_OBJECT) at Complete, and HEAD/GET with ChecksumMode.

def b64(raw):
    return base64.b64encode(raw).decode()


def crc32(data):
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def crc32c(data):
    return b64(crc_checksums.crc32c(data).to_bytes(4, "big"))


def crc64nvme(data):
    return b64(crc_checksums.crc64nvme(data).to_bytes(8, "big"))


def sha256(data):
    return b64(hashlib.sha256(data).digest())


def composite(values, hash_raw):
    """COMPOSITE: the checksum of the concatenated raw part checksums, then `-N`."""
    raw = b"".join(base64.b64decode(v) for v in values)
    return f"{hash_raw(raw)}-{len(values)}"


def upload_parts(s3, bucket, key, up, pieces, algorithm):
    parts = []
    for n, piece in enumerate(pieces, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=piece,
                           ChecksumAlgorithm=algorithm)
        parts.append({"PartNumber": n, "ETag": r["ETag"],
                      f"Checksum{algorithm}": r[f"Checksum{algorithm}"]})
    return parts


def test_composite_crc32(s3, bucket):
    pieces = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(4321)]
    c = s3.create_multipart_upload(Bucket=bucket, Key="c32", ChecksumAlgorithm="CRC32")
    assert (c["ChecksumAlgorithm"], c["ChecksumType"]) == ("CRC32", "COMPOSITE")
    up = c["UploadId"]
    parts = upload_parts(s3, bucket, "c32", up, pieces, "CRC32")
    assert [p["ChecksumCRC32"] for p in parts] == [crc32(p) for p in pieces]
    listed = s3.list_parts(Bucket=bucket, Key="c32", UploadId=up)
    assert (listed["ChecksumAlgorithm"], listed["ChecksumType"]) == ("CRC32", "COMPOSITE")
    assert [p["ChecksumCRC32"] for p in listed["Parts"]] == [crc32(p) for p in pieces]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["UploadId"], u["ChecksumAlgorithm"]) for u in uploads] == [(up, "CRC32")]
    want = composite([crc32(p) for p in pieces], lambda raw: crc32(raw))
    assert want.endswith("-3")
    r = s3.complete_multipart_upload(Bucket=bucket, Key="c32", UploadId=up,
                                     MultipartUpload={"Parts": parts})
    assert (r["ChecksumCRC32"], r["ChecksumType"]) == (want, "COMPOSITE")
    h = s3.head_object(Bucket=bucket, Key="c32", ChecksumMode="ENABLED")
    assert (h["ChecksumCRC32"], h["ChecksumType"]) == (want, "COMPOSITE")
    assert "ChecksumCRC32" not in s3.head_object(Bucket=bucket, Key="c32")
    g = s3.get_object(Bucket=bucket, Key="c32", ChecksumMode="ENABLED")
    assert g["ChecksumCRC32"] == want and g["Body"].read() == b"".join(pieces)
    ranged = s3.get_object(Bucket=bucket, Key="c32", ChecksumMode="ENABLED", Range="bytes=0-9")
    assert "ChecksumCRC32" not in ranged and ranged["Body"].read() == pieces[0][:10]


def test_composite_sha256_and_part_algorithm_mismatch(server, s3, bucket):
    pieces = [os.urandom(5 * MiB), os.urandom(77)]
    c = s3.create_multipart_upload(Bucket=bucket, Key="s256", ChecksumAlgorithm="SHA256")
    assert (c["ChecksumAlgorithm"], c["ChecksumType"]) == ("SHA256", "COMPOSITE")
    up = c["UploadId"]
    # A part checked with another algorithm than the upload's is refused, as S3 does. Each on
    # a client of its own: a request refused before its body is read can leave its connection
    # unusable (botocore skips the body after an early answer to Expect: 100-continue, and
    # hyper may drain the next request as that body), a gateway issue of its own.
    for extra in ({"ChecksumAlgorithm": "CRC32"}, {"ChecksumCRC32C": crc32c(pieces[1])}):
        with pytest.raises(ClientError) as e:
            server.client().upload_part(Bucket=bucket, Key="s256", UploadId=up, PartNumber=2,
                                        Body=pieces[1], **extra)
        assert code(e.value) == ("InvalidRequest", 400), extra
    parts = upload_parts(s3, bucket, "s256", up, pieces, "SHA256")
    assert [p["ChecksumSHA256"] for p in parts] == [sha256(p) for p in pieces]
    want = composite([sha256(p) for p in pieces], lambda raw: sha256(raw))
    r = s3.complete_multipart_upload(Bucket=bucket, Key="s256", UploadId=up,
                                     MultipartUpload={"Parts": parts})
    assert (r["ChecksumSHA256"], r["ChecksumType"]) == (want, "COMPOSITE")
    h = s3.head_object(Bucket=bucket, Key="s256", ChecksumMode="ENABLED")
    assert (h["ChecksumSHA256"], h["ChecksumType"]) == (want, "COMPOSITE")


def test_full_object_crc64nvme(s3, bucket):
    pieces = [os.urandom(5 * MiB), os.urandom(5 * MiB + 3), os.urandom(1000)]
    data = b"".join(pieces)
    c = s3.create_multipart_upload(Bucket=bucket, Key="c64", ChecksumAlgorithm="CRC64NVME")
    assert (c["ChecksumAlgorithm"], c["ChecksumType"]) == ("CRC64NVME", "FULL_OBJECT")
    up = c["UploadId"]
    parts = upload_parts(s3, bucket, "c64", up, pieces, "CRC64NVME")
    assert [p["ChecksumCRC64NVME"] for p in parts] == [crc64nvme(p) for p in pieces]
    want = crc64nvme(data)
    # A whole-object value sent with Complete is checked.
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="c64", UploadId=up,
                                     ChecksumCRC64NVME=crc64nvme(b"other"),
                                     MultipartUpload={"Parts": parts})
    assert code(e.value) == ("BadDigest", 400)
    r = s3.complete_multipart_upload(Bucket=bucket, Key="c64", UploadId=up,
                                     ChecksumCRC64NVME=want, ChecksumType="FULL_OBJECT",
                                     MultipartUpload={"Parts": parts})
    assert (r["ChecksumCRC64NVME"], r["ChecksumType"]) == (want, "FULL_OBJECT")
    h = s3.head_object(Bucket=bucket, Key="c64", ChecksumMode="ENABLED")
    assert (h["ChecksumCRC64NVME"], h["ChecksumType"]) == (want, "FULL_OBJECT")
    # botocore validates a full-object checksum against the body it reads.
    g = s3.get_object(Bucket=bucket, Key="c64", ChecksumMode="ENABLED")
    assert g["ChecksumCRC64NVME"] == want and g["Body"].read() == data


def test_full_object_crc32c_explicit_type(s3, bucket):
    pieces = [os.urandom(5 * MiB + 1), os.urandom(5 * MiB), b""]
    data = b"".join(pieces)
    c = s3.create_multipart_upload(Bucket=bucket, Key="c32c", ChecksumAlgorithm="CRC32C",
                                   ChecksumType="FULL_OBJECT")
    assert (c["ChecksumAlgorithm"], c["ChecksumType"]) == ("CRC32C", "FULL_OBJECT")
    up = c["UploadId"]
    parts = upload_parts(s3, bucket, "c32c", up, pieces, "CRC32C")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="c32c", UploadId=up,
                                     ChecksumType="COMPOSITE", MultipartUpload={"Parts": parts})
    assert code(e.value) == ("InvalidRequest", 400)
    r = s3.complete_multipart_upload(Bucket=bucket, Key="c32c", UploadId=up,
                                     MultipartUpload={"Parts": parts})
    assert (r["ChecksumCRC32C"], r["ChecksumType"]) == (crc32c(data), "FULL_OBJECT")
    g = s3.get_object(Bucket=bucket, Key="c32c", ChecksumMode="ENABLED")
    assert g["ChecksumCRC32C"] == crc32c(data) and g["Body"].read() == data


def test_wrong_part_checksum_in_complete(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="w", ChecksumAlgorithm="CRC32")["UploadId"]
    parts = upload_parts(s3, bucket, "w", up, [b"part one"], "CRC32")
    for wrong in ({"ChecksumCRC32": crc32(b"something else")},
                  {"ChecksumCRC32": None, "ChecksumCRC32C": crc32c(b"part one")}):
        bad = [{k: v for k, v in {**parts[0], **wrong}.items() if v is not None}]
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=bucket, Key="w", UploadId=up,
                                         MultipartUpload={"Parts": bad})
        assert code(e.value) == ("InvalidPart", 400), wrong
    # The part checksums may be left out of Complete.
    plain = [{"PartNumber": 1, "ETag": parts[0]["ETag"]}]
    r = s3.complete_multipart_upload(Bucket=bucket, Key="w", UploadId=up,
                                     MultipartUpload={"Parts": plain})
    assert r["ChecksumCRC32"] == composite([crc32(b"part one")], lambda raw: crc32(raw))


def test_create_checksum_errors(s3, bucket):
    for algorithm, kind in [("SHA256", "FULL_OBJECT"), ("SHA1", "FULL_OBJECT"),
                            ("CRC64NVME", "COMPOSITE"), ("MD5", None)]:
        args = {"ChecksumAlgorithm": algorithm}
        if kind:
            args["ChecksumType"] = kind
        with pytest.raises(ClientError) as e:
            s3.create_multipart_upload(Bucket=bucket, Key="e", **args)
        assert code(e.value) == ("InvalidRequest", 400), args
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_upload_part_copy_checksum(s3, bucket):
    data = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key="src", Body=data)
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst", ChecksumAlgorithm="CRC32")["UploadId"]
    r = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"},
                            CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    assert r["CopyPartResult"]["ChecksumCRC32"] == crc32(data[:5 * MiB])
    parts = [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"],
              "ChecksumCRC32": r["CopyPartResult"]["ChecksumCRC32"]}]
    p2 = s3.upload_part(Bucket=bucket, Key="dst", UploadId=up, PartNumber=2,
                        Body=data[5 * MiB:], ChecksumAlgorithm="CRC32")
    parts.append({"PartNumber": 2, "ETag": p2["ETag"], "ChecksumCRC32": p2["ChecksumCRC32"]})
    r = s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=up,
                                     MultipartUpload={"Parts": parts})
    want = composite([crc32(data[:5 * MiB]), crc32(data[5 * MiB:])], lambda raw: crc32(raw))
    assert r["ChecksumCRC32"] == want


def test_put_object_checksum_is_stored(s3, bucket):
    data = os.urandom(300_000)
    r = s3.put_object(Bucket=bucket, Key="p", Body=data, ChecksumAlgorithm="SHA256")
    assert r["ChecksumSHA256"] == sha256(data)
    h = s3.head_object(Bucket=bucket, Key="p", ChecksumMode="ENABLED")
    assert (h["ChecksumSHA256"], h["ChecksumType"]) == (sha256(data), "FULL_OBJECT")
    s3.put_object(Bucket=bucket, Key="q", Body=data, ChecksumCRC32=crc32(data))
    g = s3.get_object(Bucket=bucket, Key="q", ChecksumMode="ENABLED")
    assert g["ChecksumCRC32"] == crc32(data) and g["Body"].read() == data


def test_upload_without_algorithm_gets_the_default_checksum(s3, bucket):
    # boto3 checks each part with CRC32 by default: accepted; what is kept is S3's default,
    # each part's CRC64NVME, and the object gets a FULL_OBJECT CRC64NVME at Complete.
    up = s3.create_multipart_upload(Bucket=bucket, Key="n")["UploadId"]
    r = s3.upload_part(Bucket=bucket, Key="n", UploadId=up, PartNumber=1, Body=b"data")
    assert "ChecksumCRC32" not in r and "ChecksumCRC64NVME" in r
    listed = s3.list_parts(Bucket=bucket, Key="n", UploadId=up)
    assert "ChecksumAlgorithm" not in listed and "ChecksumCRC32" not in listed["Parts"][0]
    assert listed["Parts"][0]["ChecksumCRC64NVME"] == r["ChecksumCRC64NVME"]
    s3.complete_multipart_upload(Bucket=bucket, Key="n", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]})
    h = s3.head_object(Bucket=bucket, Key="n", ChecksumMode="ENABLED")
    assert (h["ChecksumCRC64NVME"], h["ChecksumType"]) == (r["ChecksumCRC64NVME"], "FULL_OBJECT")


def test_part_checksum_computed_when_not_sent(server, bucket):
    # A client that sends no part checksum (boto3 with checksums only "when required"): the
    # server computes the upload's algorithm over each part all the same.
    s3 = boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"),
    )
    up = s3.create_multipart_upload(Bucket=bucket, Key="q", ChecksumAlgorithm="SHA1",
                                    ChecksumType="COMPOSITE")["UploadId"]
    r = s3.upload_part(Bucket=bucket, Key="q", UploadId=up, PartNumber=1, Body=b"quiet")
    sha1 = b64(hashlib.sha1(b"quiet").digest())
    assert r["ChecksumSHA1"] == sha1
    r = s3.complete_multipart_upload(Bucket=bucket, Key="q", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]})
    want = composite([sha1], lambda raw: b64(hashlib.sha1(raw).digest()))
    assert (r["ChecksumSHA1"], r["ChecksumType"]) == (want, "COMPOSITE")
