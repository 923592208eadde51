"""Multipart uploads against a real `percore serve`: boto3's own multipart path and the
explicit API with its error cases."""
import hashlib
import os

import pytest
from boto3.s3.transfer import TransferConfig
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
